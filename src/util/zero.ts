/**
 * All-zero blocks: SquashFS stores a block of zeros as a hole (a size word of 0), so the writer
 * and its workers look for them before storing, and extraction turns them back into holes.
 */

/** Whether `b` is all zeros; `zeros` is a zero-filled buffer at least as long (kept by the caller). */
export function isAllZero(b: Uint8Array, zeros: Uint8Array): boolean {
  if (b.length > zeros.length) return false;
  return Buffer.compare(Buffer.from(b.buffer, b.byteOffset, b.length), Buffer.from(zeros.buffer, zeros.byteOffset, b.length)) === 0;
}
