import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiagramFile } from './diagram-set.js';
import { diagramFiles, markedSvg, staleDiagrams } from './diagram-set.js';

/**
 * The diagrams CLI: `tsx diagrams/generate.ts [--render | --check]`.
 *
 * Theory of operation. Generated diagrams are never edited by hand: CI
 * regenerates them and fails on a difference. `--check` computes every
 * diagram in memory and compares it with the committed `.mmd` file, and
 * checks that each `.svg` carries the hashes of that text and of its own
 * drawing (written when it was rendered), so a picture drawn from an older
 * `.mmd` or edited by hand fails too; it needs no browser, so it runs
 * anywhere. `--render` (the default) writes the `.mmd`
 * files and renders each to `.svg` with mermaid-cli, using the system
 * Chromium named in `puppeteer-config.json`, because CI never downloads a
 * browser (PUPPETEER_SKIP_DOWNLOAD=1). The layout engine is chosen in
 * `mermaid-config.json`, not in the `.mmd` files, so they stay plain mermaid
 * that any viewer can show.
 */
const diagramsDirectory = dirname(fileURLToPath(import.meta.url));
const projectDirectory = dirname(diagramsDirectory);
const mmdcPath = join(projectDirectory, 'node_modules', '.bin', 'mmdc');
const puppeteerConfigPath = join(diagramsDirectory, 'puppeteer-config.json');
// ELK lays out nested states and crossing edges far more legibly than mermaid's default dagre layout.
const mermaidConfigPath = join(diagramsDirectory, 'mermaid-config.json');

/** An SVG smaller than this holds no drawing, only mermaid's empty frame or an error. */
const svgBytesMin = 2_000;

function check(files: readonly DiagramFile[]): number {
  const stale = staleDiagrams(files, diagramsDirectory);
  if (stale.length === 0) {
    console.log(`diagrams up to date (${files.length} files)`);
    return 0;
  }
  for (const entry of stale) console.log(`out of date: diagrams/${entry}`);
  console.log('run `npm run diagrams` to regenerate them, then commit the result');
  return 1;
}

function render(files: readonly DiagramFile[]): number {
  for (const file of files) {
    const mmdPath = join(diagramsDirectory, file.fileName);
    const svgPath = mmdPath.replace(/\.mmd$/, '.svg');
    writeFileSync(mmdPath, file.text);
    const result = spawnSync(mmdcPath, ['--quiet', '--puppeteerConfigFile', puppeteerConfigPath, '--configFile', mermaidConfigPath, '--input', mmdPath, '--output', svgPath], {
      stdio: 'inherit',
      env: { ...process.env, PUPPETEER_SKIP_DOWNLOAD: '1' },
    });
    if (result.status !== 0) {
      console.error(`mmdc failed on diagrams/${file.fileName} (${result.error?.message ?? `exit status ${result.status}`})`);
      return 1;
    }
    const svgBytes = statSync(svgPath).size;
    if (svgBytes < svgBytesMin) {
      console.error(`diagrams/${file.fileName} rendered to only ${svgBytes} bytes; mermaid drew nothing`);
      return 1;
    }
    // Names its source, so `--check` can tell a picture drawn from another `.mmd` (or edited by hand) from this one's.
    writeFileSync(svgPath, markedSvg(readFileSync(svgPath, 'utf8'), file.text));
    console.log(`wrote diagrams/${file.fileName} and ${svgPath.slice(diagramsDirectory.length + 1)} (${svgBytes} bytes)`);
  }
  return 0;
}

function main(argv: readonly string[]): number {
  const modes: readonly string[] = argv.filter((argument) => argument === '--check' || argument === '--render');
  const unknown = argv.filter((argument) => !modes.includes(argument));
  if (unknown.length > 0 || modes.length > 1) {
    console.error('usage: tsx diagrams/generate.ts [--render | --check]');
    return 2;
  }
  const files = diagramFiles();
  return modes[0] === '--check' ? check(files) : render(files);
}

process.exitCode = main(process.argv.slice(2));
