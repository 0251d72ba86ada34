const express = require('express');

const posts = [
  { id: 1, title: 'Sunrise over Kyoto', categories: ['Travel', 'Culture'] },
  { id: 2, title: 'Hiking the Dolomites', categories: ['Nature', 'Adventure'] },
];

const app = express();
app.use(express.json());

app.get('/api/health', (req, res) => res.json({ status: 'ok' }));
app.get('/api/posts', (req, res) => res.json(posts));
app.get('/api/posts/:id', (req, res) => {
  const post = posts.find((p) => p.id === Number(req.params.id));
  if (!post) return res.status(404).json({ message: 'post not found' });
  return res.json(post);
});

module.exports = app;
