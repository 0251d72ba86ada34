import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashtags } from './format.js';

test('hashtags', () => {
  assert.equal(hashtags(['Travel', 'Road Trips']), '#travel #road-trips');
  assert.equal(hashtags([]), '');
});
