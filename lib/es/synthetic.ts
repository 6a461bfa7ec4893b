/** Moved to lib/data/synthetic.ts (kept for imports that have not moved yet). */
export * from '../data/synthetic.js';
