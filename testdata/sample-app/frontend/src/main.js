import { hashtags } from './format.js';

const app = document.querySelector('#app');
fetch('/api/posts')
  .then((r) => r.json())
  .then((posts) => {
    app.innerHTML = posts.map((p) => `<article><h2>${p.title}</h2><p>${hashtags(p.categories)}</p></article>`).join('');
  })
  .catch(() => {
    app.textContent = 'Could not load posts.';
  });
