// Example questions on the landing page, two per shipped expert (experts/experts.yaml).
// An expert not listed here (one added in a deployment's own config) just shows none.

export const EXAMPLES: Readonly<Record<string, readonly [string, string]>> = {
  code: ["How do I squash the last three git commits?", "Why does my Kubernetes pod keep restarting?"],
  legal: ["What is the liability cap in our MSA?", "Can we use an AGPL library in the product?"],
  support: ["I can't log in to Beacon after resetting my password", "Why was my card payment declined?"],
  general: ["Write a short out-of-office message for next week", "Give me three ideas for a team offsite"],
};

export function examplesFor(expert: string): readonly string[] {
  return EXAMPLES[expert] ?? [];
}
