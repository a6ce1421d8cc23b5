/** `npm start`: `blockshift up` with the embedded defaults (a local group of three servers). */
import { run } from './blockshift.js';

// `npm start -- --data DIR --base-port P` is `up` with those options (only a bare `npm start` was before).
const argv = process.argv.slice(2);
process.exitCode = await run(argv.length === 0 || argv[0]!.startsWith('--') ? ['up', ...argv] : argv);
