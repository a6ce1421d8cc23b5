#!/usr/bin/env node
// The `blockshift` command: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../impl/cli/blockshift.ts');
process.exitCode = await run(process.argv.slice(2));
