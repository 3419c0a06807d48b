#!/usr/bin/env node
// A native-solc lookalike over the pinned npm `solc` package, for py-solc-x.
// Supports `--version` and `--standard-json` (input on stdin, or a file argument), plus
// `--base-path DIR`, `--include-path DIR` and `--allow-paths A,B` for resolving imports.
// Unlike raw solcjs it prints no banner and never calls process.exit, so output on a pipe
// is never truncated.
'use strict';
const fs = require('fs');
const path = require('path');

function fail(message, code) {
  process.stderr.write(message + '\n');
  process.exitCode = code;
}

function main(argv) {
  const opts = { basePath: null, includePaths: [], allowPaths: [], standardJson: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = () => {
      if (i + 1 >= argv.length) throw new Error(`option ${a} needs a value`);
      return argv[++i];
    };
    if (a === '--version') {
      const solc = require('solc');
      process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
      return;
    } else if (a === '--standard-json') opts.standardJson = true;
    else if (a === '--base-path') opts.basePath = take();
    else if (a === '--include-path') opts.includePaths.push(take());
    else if (a === '--allow-paths') opts.allowPaths.push(...take().split(','));
    else if (a.startsWith('--')) throw new Error(`unsupported option ${a}`);
    else opts.files.push(a);
  }
  if (!opts.standardJson) throw new Error('only --version and --standard-json are supported');
  const input = opts.files.length ? fs.readFileSync(opts.files[0], 'utf8') : fs.readFileSync(0, 'utf8');
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths];
  const allowed = [...roots, ...opts.allowPaths].map((p) => path.resolve(p));
  const findImports = (name) => {
    for (const root of roots) {
      const full = path.resolve(root, name);
      if (!allowed.some((dir) => full === dir || full.startsWith(dir + path.sep))) continue;
      if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
    }
    return { error: `File not found: ${name}` };
  };
  const solc = require('solc');
  const output = solc.compile(input, { import: findImports });
  process.stdout.write(output.endsWith('\n') ? output : output + '\n');
}

try {
  main(process.argv.slice(2));
} catch (err) {
  fail('Error: ' + err.message, 1);
}
