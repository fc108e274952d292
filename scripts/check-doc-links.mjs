#!/usr/bin/env node
// Checks the relative links of the project's markdown: README.md, CONTRIBUTING.md and docs/**/*.md
// (not the generated docs/api/). Every [text](target) and ![alt](target) outside code must name a
// file or folder that exists, and a #anchor must match a heading of the target file (GitHub's slugs:
// lower case, punctuation dropped, spaces to hyphens, -1, -2 ... for repeats). Links with a scheme
// (https:, mailto:) are not fetched. Prints every broken link as FILE:LINE: target (reason) and exits 1
// if there is one.
//
//   node scripts/check-doc-links.mjs [FILE.md ...]     (default: the files above, from the repo root)
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function markdownFiles() {
  const files = ["README.md", "CONTRIBUTING.md"].map((f) => join(root, f)).filter((f) => existsSync(f));
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (relative(root, p) !== join("docs", "api")) walk(p);
      } else if (name.endsWith(".md")) files.push(p);
    }
  };
  if (existsSync(join(root, "docs"))) walk(join(root, "docs"));
  return files;
}

/** The text of each line with fenced code blocks blanked and inline code spans removed. */
function proseLines(text) {
  let fence = null;
  return text.split("\n").map((line) => {
    const m = /^\s*(```+|~~~+)/.exec(line);
    if (m) {
      if (fence === null) fence = m[1][0];
      else if (m[1][0] === fence) fence = null;
      return "";
    }
    if (fence !== null) return "";
    return line.replace(/(`+)[\s\S]*?\1/g, "");
  });
}

/** GitHub's heading anchors of a markdown file. */
const anchorCache = new Map();
function anchorsOf(file) {
  if (anchorCache.has(file)) return anchorCache.get(file);
  const seen = new Map();
  const anchors = new Set();
  let fence = null;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const f = /^\s*(```+|~~~+)/.exec(line);
    if (f) {
      if (fence === null) fence = f[1][0];
      else if (f[1][0] === fence) fence = null;
      continue;
    }
    if (fence !== null) continue;
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // a link in a heading counts by its text
      .replace(/<[^>]+>/g, "");
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => resolve(f)) : markdownFiles();
const broken = [];
let checked = 0;
for (const file of files) {
  const lines = proseLines(readFileSync(file, "utf8"));
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
      checked++;
      const where = `${relative(root, file)}:${i + 1}`;
      const [pathPart, anchor] = target.split("#", 2);
      const dest = pathPart === "" ? file : resolve(dirname(file), decodeURIComponent(pathPart));
      if (!existsSync(dest)) { broken.push(`${where}: ${target} (no such file: ${relative(root, dest)})`); continue; }
      if (!dest.startsWith(root + "/") && dest !== root) { broken.push(`${where}: ${target} (outside the repository)`); continue; }
      if (anchor === undefined || anchor === "") continue;
      if (!dest.endsWith(".md")) { broken.push(`${where}: ${target} (an anchor into a file that is not markdown)`); continue; }
      if (!anchorsOf(dest).has(decodeURIComponent(anchor))) broken.push(`${where}: ${target} (no heading #${anchor} in ${relative(root, dest)})`);
    }
  });
}
for (const b of broken) console.error(b);
console.log(`check-doc-links: ${files.length} files, ${checked} relative links, ${broken.length} broken`);
process.exit(broken.length ? 1 : 0);
