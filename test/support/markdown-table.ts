/**
 * The rows of the first table under `heading` (a whole line such as `## Errors`) in a markdown
 * text, each row's cells trimmed, header and `|---|` line left out. `\|` inside a cell is kept.
 */
export function tableUnder(markdown: string, heading: string): string[][] {
  const lines = markdown.split("\n");
  const at = lines.findIndex((line) => line.trim() === heading);
  if (at < 0) throw new Error(`no heading "${heading}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(at + 1)) {
    if (/^#{1,6} /.test(line)) break;
    if (!line.startsWith("|")) {
      if (rows.length > 0) break;
      continue;
    }
    const cells = line
      .replace(/\\\|/g, "\uE000")
      .split("|")
      .slice(1, -1)
      .map((cell) => cell.replace(/\uE000/g, "|").trim());
    rows.push(cells);
  }
  return rows.slice(2);
}

/** A cell's text without the backticks around all of it: `` `8787` `` → `8787`. */
export function unquote(cell: string): string {
  return /^`([^`]*)`$/.exec(cell)?.[1] ?? cell;
}
