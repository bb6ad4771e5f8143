/**
 * `npm run build`: the `lifeline/client` package export, the one part of Lifeline that is built
 * (docs/decisions/007-client-package-build.md). It writes
 * - dist/client/index.js and its source map: the SDK as one ES module, bundled by esbuild with the
 *   options the gateway's `GET /client.js` uses;
 * - dist/client/*.d.ts and the dist/core/*.d.ts they import: the declarations, by tsc from
 *   tsconfig.client.json, which also type-checks the SDK without Node's types.
 */
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import ts from "typescript";
import { clientBundleOptions } from "../src/build/client-bundle.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIST = `${ROOT}dist`;
/** `./follow.ts` → `./follow.js`: relative specifiers, not `.d.ts` ones. */
const RELATIVE_TS = /^(\.{1,2}\/.*?)(?<!\.d)\.ts$/;

/** Emits the declarations of a tsconfig; prints its diagnostics and answers false when there are any. */
function emitDeclarations(configPath: string): boolean {
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => ROOT,
    getNewLine: () => "\n",
  };
  const unrecoverable: ts.Diagnostic[] = [];
  const config = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => unrecoverable.push(d) },
  );
  let diagnostics: readonly ts.Diagnostic[] = unrecoverable;
  if (config) {
    const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
    const emitted = program.emit(undefined, undefined, undefined, true, { afterDeclarations: [jsSpecifiers] });
    diagnostics = [...config.errors, ...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  }
  if (diagnostics.length > 0) process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  return diagnostics.length === 0;
}

/**
 * The sources import each other as `./x.ts`, and tsc keeps that in declarations even with
 * `rewriteRelativeImportExtensions` (microsoft/TypeScript#61037). TypeScript 5 resolves it, but
 * editors and older compilers look for a file that is not in dist/: the declarations say `./x.js`.
 */
function jsSpecifiers(context: ts.TransformationContext): ts.Transformer<ts.SourceFile | ts.Bundle> {
  const { factory } = context;
  const rewrite = <T extends ts.Expression>(specifier: T): T | ts.StringLiteral =>
    ts.isStringLiteral(specifier) && RELATIVE_TS.test(specifier.text)
      ? factory.createStringLiteral(specifier.text.replace(RELATIVE_TS, "$1.js"))
      : specifier;
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isImportDeclaration(node)) {
      return factory.updateImportDeclaration(node, node.modifiers, node.importClause, rewrite(node.moduleSpecifier), node.attributes);
    }
    if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      return factory.updateExportDeclaration(
        node,
        node.modifiers,
        node.isTypeOnly,
        node.exportClause,
        rewrite(node.moduleSpecifier),
        node.attributes,
      );
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const argument = factory.updateLiteralTypeNode(node.argument, rewrite(node.argument.literal));
      const updated = factory.updateImportTypeNode(node, argument, node.attributes, node.qualifier, node.typeArguments, node.isTypeOf);
      return ts.visitEachChild(updated, visit, context);
    }
    return ts.visitEachChild(node, visit, context);
  };
  return (root) => (ts.isSourceFile(root) ? ts.visitEachChild(root, visit, context) : root);
}

await rm(DIST, { recursive: true, force: true });
await build({ ...clientBundleOptions(), outfile: `${DIST}/client/index.js`, sourcemap: true, logLevel: "warning" });
if (!emitDeclarations(`${ROOT}tsconfig.client.json`)) process.exitCode = 1;
