// What the synthetic world is made of, and the words for it. Captions, questions and the world's tokenizer all
// read from here, so a word used anywhere is a word the tokenizer knows.

export type Rgb = readonly [number, number, number];

/** Colours far apart in RGB and in yuv420p's subsampled chroma, each clear against the dark backgrounds. */
export const COLORS = {
  red: [220, 50, 50],
  green: [50, 190, 70],
  blue: [60, 100, 235],
  yellow: [235, 215, 50],
  purple: [165, 70, 210],
  orange: [245, 140, 35],
  white: [235, 235, 235],
  cyan: [50, 210, 220],
} as const satisfies Record<string, Rgb>;
export type Color = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as Color[];

/** Dark backgrounds, one per video. */
export const BACKGROUNDS: readonly Rgb[] = [[24, 24, 32], [34, 30, 26], [22, 34, 30], [38, 38, 38], [30, 24, 36]];

/** The shapes native/synthetic/render.cc draws (its names, in its order). */
export const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring'] as const;
export type Shape = (typeof SHAPES)[number];

export const MOTIONS = ['still', 'left', 'right', 'up', 'down', 'grow', 'shrink', 'blink'] as const;
export type Motion = (typeof MOTIONS)[number];

/** A motion as a caption says it: "a red circle moves left". */
export const MOTION_PHRASES: Record<Motion, string> = {
  still: 'stays still', left: 'moves left', right: 'moves right', up: 'moves up', down: 'moves down',
  grow: 'grows', shrink: 'shrinks', blink: 'blinks',
};

/** What a motion looks like played backwards. */
export const REVERSED_MOTION: Record<Motion, Motion> = {
  still: 'still', left: 'right', right: 'left', up: 'down', down: 'up', grow: 'shrink', shrink: 'grow', blink: 'blink',
};

/** Counts are written as numerals; the tokenizer knows 0 .. MAX_NUMBER as whole words. */
export const MAX_NUMBER = 99;

export const LETTERS = ['A', 'B', 'C', 'D'] as const;

/** Every other word of the world's sentences (questions, answers, the multiple-choice instruction, chat roles). */
export const FUNCTION_WORDS = [
  'a', 'an', 'the', 'What', 'what', 'Which', 'which', 'How', 'how', 'many', 'color', 'shape', 'shapes', 'is', 'does', 'do',
  'happens', 'happen', 'just', 'before', 'after', 'comes', 'come', 'first', 'last', 'in', 'In', 'order', 'appear',
  'appears', 'video', 'or', 'and', 'then', 'of', 'these', 'that', 'Answer', 'with', 'letter', 'correct', 'option',
  'Describe', 'describe', 'You', 'are', 'helpful', 'assistant', 'user', 'system', 'moves', 'stays', 'left', 'right',
  'up', 'down', 'still', 'grows', 'shrinks', 'blinks', 'times', 'none', 'no', 'yes', 'Yes', 'No',
] as const;

export const PUNCTUATION = ['.', ',', '?', ':', "'", '!', '-', '(', ')'] as const;
