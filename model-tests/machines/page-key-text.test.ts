import { describe, expect, it } from 'vitest';
import type { PageKey } from '../../machines/identifiers.js';
import { pageKeyOfText, pageKeyText } from '../../machines/identifiers.js';

/** Maps keyed by page text are read back through one parser; it must invert `pageKeyText` exactly. */
describe('page key text', () => {
  it('round-trips every page key, including volume names that hold slashes or digits', () => {
    const keys: PageKey[] = [
      { volume: 'alpha', page: 0 },
      { volume: 'alpha', page: 7 },
      { volume: 'a/b', page: 12 },
      { volume: 'v/3', page: 4 },
      { volume: '42', page: 2 ** 40 },
    ];
    for (const pageKey of keys) {
      expect(pageKeyOfText(pageKeyText(pageKey))).toEqual(pageKey);
    }
  });

  it('refuses text pageKeyText cannot produce', () => {
    for (const text of ['', 'alpha', '/3', 'alpha/', 'alpha/-1', 'alpha/1.5', 'alpha/01', 'alpha/ 1', 'alpha/1e3', 'alpha/NaN', 'alpha/Infinity', `alpha/${2 ** 53}`]) {
      expect(pageKeyOfText(text), text).toBeNull();
    }
  });
});
