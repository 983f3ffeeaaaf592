// Lint rules for src/, test/ and bench/ (`npm run check`): ESLint's and typescript-eslint's
// recommended sets, less the rules this code base breaks on purpose, each with its reason. Rules
// marked "for now" hold in most of the tree and are worth turning on once the few places in
// others' areas are mended (listed by `npx eslint . --rule '{"prefer-const": "error"}'`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'fixtures/', '**/*.js', '**/*.mjs'] },
  // Directives for rules turned off below stay where they are (they document why a require is lazy).
  { linterOptions: { reportUnusedDisableDirectives: 'off' } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      // Optional native addons and CLI commands are loaded lazily, at the moment they are needed.
      '@typescript-eslint/no-require-imports': 'off',
      // Foreign errors are rewrapped in our own words on purpose (errors.ts, house style): the
      // message carries what matters, and a raw Node error must not leak to the user.
      'preserve-caught-error': 'off',
      // Escaping control characters in names for display needs them in regular expressions.
      'no-control-regex': 'off',
      // Names starting with _ are unused on purpose (destructuring, callback positions).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // For now (a few places each in src/codec, src/fuse, src/cli).
      'no-useless-assignment': 'off',
      'prefer-const': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      '@typescript-eslint/no-duplicate-enum-values': 'off',
    },
  },
);
