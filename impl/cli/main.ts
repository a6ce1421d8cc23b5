/** `npm start`: `blockshift up` with the embedded defaults (a local group of three servers). */
import { run } from './blockshift.js';

process.exitCode = await run(process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['up']);
