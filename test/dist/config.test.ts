// lib/dist/config.ts and the launcher's pieces: torchrun's variables read with errors that name them, --nproc
// taken out of a command line, the shares of a list.
import assert from 'node:assert/strict';

import { distEnv, isSecondaryRank } from '../../lib/dist/config.js';
import { contiguousParts, roundRobin } from '../../lib/dist/group.js';
import { takeNproc } from '../../lib/dist/launch.js';

describe('distributed: torchrun variables and shares', () => {
  it('reads torchrun\'s variables, with defaults for the optional ones', () => {
    assert.equal(distEnv({}), undefined);
    assert.deepEqual(distEnv({ RANK: '1', WORLD_SIZE: '2' }), {
      rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, masterAddr: '127.0.0.1', masterPort: 29500,
    });
    assert.deepEqual(distEnv({ RANK: '9', WORLD_SIZE: '16', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '8', MASTER_ADDR: 'node0', MASTER_PORT: '1234' }), {
      rank: 9, worldSize: 16, localRank: 1, localWorldSize: 8, masterAddr: 'node0', masterPort: 1234,
    });
    assert.equal(isSecondaryRank({ RANK: '0', WORLD_SIZE: '2' }), false);
    assert.equal(isSecondaryRank({ RANK: '1', WORLD_SIZE: '2' }), true);
  });

  it('names the variable that is wrong', () => {
    assert.throws(() => distEnv({ WORLD_SIZE: '2' }), /torchrun's variables\): RANK: /);
    assert.throws(() => distEnv({ RANK: '2', WORLD_SIZE: '2' }), /RANK: must be below WORLD_SIZE \(2\)/);
    assert.throws(() => distEnv({ RANK: 'x', WORLD_SIZE: '2' }), /RANK: must be a non-negative integer/);
    assert.throws(() => distEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '70000' }), /MASTER_PORT: must be a port/);
    assert.throws(() => distEnv({ RANK: '0', WORLD_SIZE: '4', LOCAL_RANK: '2', LOCAL_WORLD_SIZE: '2' }), /LOCAL_RANK: must be below LOCAL_WORLD_SIZE/);
  });

  it('takes --nproc out of a command line', () => {
    assert.deepEqual(takeNproc(['--config', 'a.json', '--nproc', '2', '--resume']), { nproc: 2, rest: ['--config', 'a.json', '--resume'] });
    assert.deepEqual(takeNproc(['--nproc=3']), { nproc: 3, rest: [] });
    assert.deepEqual(takeNproc(['--config', 'a.json']), { rest: ['--config', 'a.json'] });
    assert.throws(() => takeNproc(['--nproc', 'two']), /--nproc/);
    assert.throws(() => takeNproc(['--nproc']), /--nproc/);
    assert.throws(() => takeNproc(['--nproc', '0']), /--nproc/);
  });

  it('shares a list out: contiguous parts in order, or round robin', () => {
    assert.deepEqual(contiguousParts([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4, 5]]);
    assert.deepEqual(contiguousParts([1], 3), [[], [], [1]]);
    assert.deepEqual(contiguousParts([1, 2, 3, 4], 4), [[1], [2], [3], [4]]);
    assert.deepEqual(contiguousParts([1, 2, 3, 4, 5, 6], 4).flat(), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(roundRobin([0, 1, 2, 3, 4], 1, 2), [1, 3]);
    assert.deepEqual(roundRobin([0, 1, 2, 3, 4], 0, 2), [0, 2, 4]);
  });
});
