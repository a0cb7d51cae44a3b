// The CLI's progress bar and duration formatter live in the library (lib/progress.ts); this is their CLI path.
export * from '../progress.js';
