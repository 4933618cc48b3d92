// A line diff for the Scripts page: the longest common subsequence of two texts' lines, as
// `diff` computes it, small enough to read and with no library.

/** Above this many cells (lines of one side times lines of the other, once the common start and
 *  end are set aside) the table would take too much memory for a page: the middle is then shown
 *  as removed and added whole. Scripts are far smaller (4 million is 2000 × 2000 lines). */
const MAX_CELLS = 4_000_000;

/**
 * The lines of `before` and `after` as a list of `{kind, text, old, new}`: `kind` is "same",
 * "del" (only in `before`) or "add" (only in `after`); `old` and `new` are the 1-based line
 * numbers on each side (undefined on the side a line is not in). A final newline does not make
 * an empty last line.
 */
export function lineDiff(before, after) {
  const a = lines(before), b = lines(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length, endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }

  const ops = [];
  for (let i = 0; i < start; i++) ops.push({ kind: "same", text: a[i], old: i + 1, new: i + 1 });
  const n = endA - start, m = endB - start;
  if (n * m > MAX_CELLS) {
    for (let i = start; i < endA; i++) ops.push({ kind: "del", text: a[i], old: i + 1 });
    for (let j = start; j < endB; j++) ops.push({ kind: "add", text: b[j], new: j + 1 });
  } else {
    // length[i][j]: the LCS of a[start+i..endA) and b[start+j..endB), one flat array.
    const width = m + 1;
    const length = new Uint32Array((n + 1) * width);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        length[i * width + j] = a[start + i] === b[start + j]
          ? length[(i + 1) * width + j + 1] + 1
          : Math.max(length[(i + 1) * width + j], length[i * width + j + 1]);
      }
    }
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[start + i] === b[start + j]) {
        ops.push({ kind: "same", text: a[start + i], old: start + i + 1, new: start + j + 1 });
        i++; j++;
      } else if (i < n && (j === m || length[(i + 1) * width + j] >= length[i * width + j + 1])) {
        // On a tie the removed line first, as `diff` shows a changed line.
        ops.push({ kind: "del", text: a[start + i], old: start + i + 1 });
        i++;
      } else {
        ops.push({ kind: "add", text: b[start + j], new: start + j + 1 });
        j++;
      }
    }
  }
  for (let k = 0; endA + k < a.length; k++) {
    ops.push({ kind: "same", text: a[endA + k], old: endA + k + 1, new: endB + k + 1 });
  }
  return ops;
}

/** `ops` with runs of unchanged lines longer than twice `context` folded into one
 *  `{kind: "skip", count}`, keeping `context` lines around each change, as `diff -u` does. */
export function withContext(ops, context = 3) {
  const keep = ops.map(() => false);
  ops.forEach((op, index) => {
    if (op.kind === "same") return;
    for (let k = Math.max(0, index - context); k <= Math.min(ops.length - 1, index + context); k++) keep[k] = true;
  });
  const shown = [];
  let skipped = 0;
  ops.forEach((op, index) => {
    if (keep[index]) {
      if (skipped) shown.push({ kind: "skip", count: skipped });
      skipped = 0;
      shown.push(op);
    } else {
      skipped++;
    }
  });
  if (skipped) shown.push({ kind: "skip", count: skipped });
  return shown;
}

function lines(text) {
  if (text === "") return [];
  const split = text.split("\n");
  if (split[split.length - 1] === "") split.pop();
  return split;
}
