// The README example. Run from the repo root:
//   node --conditions=@kvmgr/source --import tsx packages/prefix-cache/scripts/readme-example.ts
import { RadixPrefixCache, mooncakeEngineBlockKeys } from '@kvmgr/prefix-cache';

const cache = new RadixPrefixCache({ pageSize: 4 }); // 4 tokens per block (engines: 16)
cache.onEvent = (e) => console.log('event', e.type, 'blockHashes' in e ? e.blockHashes.length : '');

const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9]; // 2 full pages + 1 token
console.log(cache.match(prompt).matchedLength); // 0: nothing cached yet
cache.insert(prompt, [10, 11]); // the engine filled blocks 10 and 11; the partial page is not cached

const hit = cache.match([1, 2, 3, 4, 5, 6, 7, 8, 42, 43, 44, 45]);
console.log(hit.matchedLength, hit.blocks); // 8 [ 10, 11 ]
cache.lock(hit.node); // a running request uses the prefix
console.log(cache.evict(2).blocks); // []: locked
cache.unlock(hit.node);
console.log(cache.evict(2).blocks); // [ 11, 10 ]: tail first

// Mooncake traces: 512-token hash_ids -> 16-token engine block keys (h * 32 + j)
const { keys, lastBlockTokens } = mooncakeEngineBlockKeys([0, 7], 512 + 20);
console.log(keys.length, keys[32], keys[33], lastBlockTokens); // 34 224 225 4
