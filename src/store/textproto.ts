/**
 * Protocol buffer text format, schema-less: distri keeps package metadata (`<full>.meta.textproto`)
 * and build recipes (`build.textproto`) in it. parseTextProto reads a document into fields with
 * their positions; the caller (meta.ts) applies its schema and ignores what it does not know.
 *
 * Grammar (the subset of the protobuf text format spec that matters; everything listed is accepted):
 *   message = { field [ ";" | "," ] }
 *   field   = name ":" scalar | name ":" "[" [ scalar { "," scalar } ] "]"
 *           | name [ ":" ] msg | name [ ":" ] "[" [ msg { "," msg } ] "]"
 *   msg     = "{" message "}" | "<" message ">"
 *   name    = ident | "[" ident { "." ident } [ "/" ident { "." ident } ] "]"   (extension / Any)
 *   scalar  = string { string }   (adjacent literals concatenate)
 *           | [ "-" ] ( ident | number )   (enum names, true/false, inf, nan, ints, floats)
 *   string  = '"' … '"' | "'" … "'"  with the C escapes \a \b \f \n \r \t \v \\ \' \" \?,
 *             octal \ooo (1-3 digits), hex \xhh (1-2 digits), \uXXXX, \UXXXXXXXX
 *   `#` starts a comment up to the end of the line.
 * A list `name: [a, b]` is the same as `name: a name: b`. Escapes produce bytes; a string whose
 * bytes are not UTF-8 is an error (these are `string` fields, not `bytes`).
 *
 * Not done: numbers are not converted (kept as their text, since no known field is numeric); the
 * schema-dependent rules (a singular field given twice) are the caller's.
 */
import { SquashfsError } from '../errors';

export type TextValue =
  | { readonly kind: 'string'; readonly value: string }
  /** An unquoted scalar (identifier or number, with its sign), as written. */
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'message'; readonly fields: readonly TextField[] };

export interface TextField {
  readonly name: string;
  readonly value: TextValue;
  /** 1-based position of the field name. */
  readonly line: number;
  readonly column: number;
}

/** Thrown for malformed input: CORRUPT, with `line:column` at the start of the message. */
export function textProtoError(structure: string, line: number, column: number, message: string): SquashfsError {
  return new SquashfsError('CORRUPT', `${line}:${column}: ${message}`, structure);
}

type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'eof';
interface Token {
  readonly kind: TokenKind;
  /** ident/number/punct: the text; string: the decoded value. */
  readonly text: string;
  readonly line: number;
  readonly column: number;
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = {
  a: 0x07,
  b: 0x08,
  f: 0x0c,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
  v: 0x0b,
  '\\': 0x5c,
  "'": 0x27,
  '"': 0x22,
  '?': 0x3f,
};

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

class Lexer {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly src: string,
    private readonly structure: string,
  ) {}

  private fail(message: string, at = this.pos): never {
    throw textProtoError(this.structure, this.line, at - this.lineStart + 1, message);
  }

  private skipSpaceAndComments(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s[this.pos];
      if (c === '\n') {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
        this.pos++;
      } else if (c === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else {
        return;
      }
    }
  }

  next(): Token {
    this.skipSpaceAndComments();
    const s = this.src;
    const start = this.pos;
    const line = this.line;
    const column = start - this.lineStart + 1;
    if (start >= s.length) return { kind: 'eof', text: '', line, column };
    const c = s.charAt(start);
    const tok = (kind: TokenKind, text: string): Token => ({ kind, text, line, column });
    if (c === '"' || c === "'") return tok('string', this.readString(c));
    const ident = /[A-Za-z_][A-Za-z0-9_]*/y;
    ident.lastIndex = start;
    if (ident.test(s)) {
      this.pos = ident.lastIndex;
      return tok('ident', s.slice(start, this.pos));
    }
    // Numbers are only skipped over, so the pattern is generous: 12, 0x1F, 1.5e-3f, .5, 1e+9.
    const number = /(?:[0-9]|\.[0-9])(?:[eE][+-]|[0-9A-Za-z_.])*/y;
    number.lastIndex = start;
    if (number.test(s)) {
      this.pos = number.lastIndex;
      return tok('number', s.slice(start, this.pos));
    }
    if (':{}<>[],;/.-'.includes(c)) {
      this.pos++;
      return tok('punct', c);
    }
    this.fail(`unexpected character ${JSON.stringify(c)}`);
  }

  /** Reads a quoted literal starting at the quote; returns its decoded value. */
  private readString(quote: string): string {
    const s = this.src;
    const open = this.pos;
    this.pos++;
    const bytes: number[] = [];
    let plainFrom = this.pos;
    let hasEscape = false;
    const flushPlain = (): void => {
      if (this.pos > plainFrom) for (const b of utf8.encode(s.slice(plainFrom, this.pos))) bytes.push(b);
    };
    for (;;) {
      if (this.pos >= s.length || s[this.pos] === '\n') this.fail('unterminated string', open);
      const c = s[this.pos];
      if (c === quote) {
        if (!hasEscape) {
          const value = s.slice(open + 1, this.pos);
          this.pos++;
          return value;
        }
        flushPlain();
        this.pos++;
        break;
      }
      if (c !== '\\') {
        this.pos++;
        continue;
      }
      hasEscape = true;
      flushPlain();
      this.readEscape(bytes);
      plainFrom = this.pos;
    }
    try {
      return strictUtf8.decode(new Uint8Array(bytes));
    } catch {
      this.fail('string is not valid UTF-8 (escapes produced invalid bytes)', open);
    }
  }

  /** At a backslash: appends the escape's bytes and moves past it. */
  private readEscape(bytes: number[]): void {
    const s = this.src;
    const at = this.pos;
    const e = s[at + 1] ?? '';
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      bytes.push(simple);
      this.pos = at + 2;
      return;
    }
    const octal = /[0-7]{1,3}/y;
    octal.lastIndex = at + 1;
    const o = octal.exec(s);
    if (o) {
      const v = parseInt(o[0], 8);
      if (v > 0xff) this.fail(`octal escape \\${o[0]} is above \\377`, at);
      bytes.push(v);
      this.pos = octal.lastIndex;
      return;
    }
    if (e === 'x' || e === 'X') {
      const hex = /[0-9A-Fa-f]{1,2}/y;
      hex.lastIndex = at + 2;
      const h = hex.exec(s);
      if (!h) this.fail('\\x escape without hex digits', at);
      bytes.push(parseInt(h[0], 16));
      this.pos = hex.lastIndex;
      return;
    }
    if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const digits = s.slice(at + 2, at + 2 + n);
      if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(digits)) this.fail(`\\${e} escape needs ${n} hex digits`, at);
      const cp = parseInt(digits, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail(`\\${e}${digits} is not a Unicode scalar value`, at);
      for (const b of utf8.encode(String.fromCodePoint(cp))) bytes.push(b);
      this.pos = at + 2 + n;
      return;
    }
    this.fail(e === '' || e === '\n' ? 'unterminated string' : `unknown escape \\${e}`, at);
  }
}

class Parser {
  private readonly lexer: Lexer;
  private tok: Token;

  constructor(
    src: string,
    private readonly structure: string,
  ) {
    this.lexer = new Lexer(src, structure);
    this.tok = this.lexer.next();
  }

  private fail(message: string, t: Token = this.tok): never {
    throw textProtoError(this.structure, t.line, t.column, message);
  }

  private describe(t: Token): string {
    if (t.kind === 'eof') return 'end of input';
    if (t.kind === 'string') return 'a string';
    return JSON.stringify(t.text);
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  private isPunct(p: string): boolean {
    return this.tok.kind === 'punct' && this.tok.text === p;
  }

  private expectPunct(p: string, what: string): void {
    if (!this.isPunct(p)) this.fail(`expected ${JSON.stringify(p)} ${what}, found ${this.describe(this.tok)}`);
    this.advance();
  }

  /** message = { field [";" | ","] } up to `close` ("" for the end of input). */
  parseMessage(close: string): TextField[] {
    const fields: TextField[] = [];
    for (;;) {
      if (close === '' ? this.tok.kind === 'eof' : this.isPunct(close)) return fields;
      if (this.tok.kind === 'eof') this.fail(`expected ${JSON.stringify(close)} to close the message, found end of input`);
      this.parseField(fields);
      if (this.isPunct(';') || this.isPunct(',')) this.advance();
    }
  }

  private parseFieldName(): string {
    const t = this.tok;
    if (t.kind === 'ident') {
      this.advance();
      return t.text;
    }
    if (this.isPunct('[')) {
      // Extension or Any type URL: [pkg.ext] or [type.googleapis.com/pkg.Msg]
      this.advance();
      let name = '[';
      while (!this.isPunct(']')) {
        if (this.tok.kind === 'ident' || (this.tok.kind === 'punct' && (this.tok.text === '.' || this.tok.text === '/'))) {
          name += this.advance().text;
        } else {
          this.fail(`expected an extension name, found ${this.describe(this.tok)}`);
        }
      }
      this.advance();
      return name + ']';
    }
    return this.fail(`expected a field name, found ${this.describe(t)}`);
  }

  private parseField(into: TextField[]): void {
    const at = this.tok;
    const name = this.parseFieldName();
    const colon = this.isPunct(':');
    if (colon) this.advance();
    const push = (value: TextValue): void => {
      into.push({ name, value, line: at.line, column: at.column });
    };
    if (this.isPunct('{') || this.isPunct('<')) {
      push(this.parseMessageValue());
      return;
    }
    if (!colon) this.fail(`expected ":" or a message after field ${name}, found ${this.describe(this.tok)}`);
    if (this.isPunct('[')) {
      this.advance();
      if (this.isPunct(']')) {
        this.advance();
        return;
      }
      for (;;) {
        push(this.isPunct('{') || this.isPunct('<') ? this.parseMessageValue() : this.parseScalar(name));
        if (this.isPunct(']')) break;
        this.expectPunct(',', 'or "]" in the list');
      }
      this.advance();
      return;
    }
    push(this.parseScalar(name));
  }

  private parseMessageValue(): TextValue {
    const close = this.advance().text === '{' ? '}' : '>';
    const fields = this.parseMessage(close);
    this.advance();
    return { kind: 'message', fields };
  }

  private parseScalar(field: string): TextValue {
    if (this.tok.kind === 'string') {
      let value = '';
      while (this.tok.kind === 'string') value += this.advance().text;
      return { kind: 'string', value };
    }
    let sign = '';
    if (this.isPunct('-')) sign = this.advance().text;
    if (this.tok.kind === 'ident' || this.tok.kind === 'number') return { kind: 'literal', text: sign + this.advance().text };
    return this.fail(`expected a value for field ${field}, found ${this.describe(this.tok)}`);
  }
}

/**
 * Parses a text-format document into its fields, in order. `structure` names the document in
 * errors (e.g. "meta.textproto"). Throws SquashfsError CORRUPT with `line:column: …` on bad input.
 */
export function parseTextProto(text: string, structure = 'textproto'): TextField[] {
  return new Parser(text, structure).parseMessage('');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Quotes a string for the text format: `"` and `\` escaped, `\n` `\r` `\t` by name, other control
 * characters as 3-digit octal; everything else (including non-ASCII) is written as is, as protobuf's
 * own writers do. A string with a lone UTF-16 surrogate has no UTF-8 form and is refused.
 */
export function quoteString(s: string, structure = 'textproto'): string {
  if (LONE_SURROGATE.test(s)) throw new SquashfsError('CORRUPT', `string ${JSON.stringify(s)} is not valid Unicode`, structure);
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\' + c.toString(8).padStart(3, '0');
    else out += ch;
  }
  return out + '"';
}
