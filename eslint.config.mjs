// eslint (run by .ci/run): TypeScript's recommended rules on the sources and tests. Import cycles are
// checked by scripts/check-cycles.mjs (type-only imports included), unused locals by the compiler.
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "build/**", "native/**", "node_modules/**", "docs/api/**", "examples/**", "scripts/**", "deploy/**"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      // A leading underscore marks a name kept on purpose (a destructured field left out, an interface's parameter).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
    },
  },
);
