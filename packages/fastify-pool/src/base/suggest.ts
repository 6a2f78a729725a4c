// "Did you mean ...?" for a name that is not known: the known name nearest to
// it, by edit distance (a transposition is one edit, case is no edit), when
// it is near enough to be a typo rather than another word.

/** Edits between two words: insertions, deletions, substitutions and transpositions of neighbours (optimal string alignment). */
function distance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/** The known name nearest to `word`, if it is within a typo of it (1 edit for short words, up to a third of the word for long ones). */
export function nearest (word: string, known: Iterable<string>): string | undefined {
  const lower = word.toLowerCase()
  const limit = Math.max(1, Math.floor(word.length / 3))
  let best: { name: string, edits: number } | undefined
  for (const name of known) {
    if (name === word) continue
    const edits = distance(lower, name.toLowerCase())
    if (edits <= limit && (best === undefined || edits < best.edits)) best = { name, edits }
  }
  return best?.name
}

/** `; did you mean "name"?` for the nearest known name, or '' when none is near. */
export function didYouMean (word: string, known: Iterable<string>, quote = (n: string): string => `"${n}"`): string {
  const name = nearest(word, known)
  return name === undefined ? '' : `; did you mean ${quote(name)}?`
}
