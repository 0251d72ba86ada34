const request = require('supertest');
const app = require('./app');

describe('api', () => {
  it('reports health', async () => {
    const res = await request(app).get('/api/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('serves a post and 404s on a missing one', async () => {
    expect((await request(app).get('/api/posts/2')).body.title).toBe('Hiking the Dolomites');
    expect((await request(app).get('/api/posts/99')).status).toBe(404);
  });
});
