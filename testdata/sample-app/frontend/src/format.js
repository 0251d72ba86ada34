// Formats a post's categories as "#travel #culture".
export function hashtags(categories) {
  return categories.map((c) => '#' + c.toLowerCase().replace(/\s+/g, '-')).join(' ');
}
