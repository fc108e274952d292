// Constructor argument checks shared by layers: errors name the argument, the value and what is allowed.
export function checkPositiveInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${what} must be a positive integer, got ${v}`);
}

export function checkNonNegativeInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new Error(`${what} must be a non-negative integer, got ${v}`);
}

export function checkProbability(what: string, v: number): void {
  if (!(v >= 0 && v < 1)) throw new Error(`${what} must be in [0, 1), got ${v}`);
}
