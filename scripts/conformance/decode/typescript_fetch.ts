// Decodes every case with an openapi-generator `typescript-fetch` client, as its API methods do.
//
// usage: node conformance_decode.js CASES RESULTS
//
// cargo xtask conformance copies this file into the generated client as conformance_decode.ts
// and compiles it with the client. Each case ({"id", "schema", "media", "body"}) is answered as a
// fetch Response and read through the client's JSONApiResponse with the transformer its API
// methods pass for the operation's declared type (`<Schema>FromJSON`; with
// withoutRuntimeChecks=true there is none, and the client returns the parsed JSON as it is),
// then written back with `<Schema>ToJSON` where the client has it. RESULTS gets
// [{"id", "value"} | {"id", "error"}].
import { JSONApiResponse } from './runtime';
import * as generated from './models/index';

declare const require: (module: string) => any;
declare const process: { argv: string[]; exitCode: number };

const fs = require('fs');
const models: Record<string, ((json: any) => any) | undefined> = generated as any;

async function main(): Promise<void> {
    const [casesPath, resultsPath] = process.argv.slice(2);
    const cases: { id: string; schema: string; media: string; body: unknown }[] = JSON.parse(
        fs.readFileSync(casesPath, 'utf8'),
    );
    const results: { id: string; value?: unknown; error?: string }[] = [];
    for (const c of cases) {
        try {
            const fromJSON = models[`${c.schema}FromJSON`];
            const toJSON = models[`${c.schema}ToJSON`];
            const raw = new Response(JSON.stringify(c.body), {
                status: 200,
                headers: { 'Content-Type': c.media },
            });
            const decoded = await new JSONApiResponse<any>(raw, fromJSON).value();
            const written = JSON.stringify(toJSON ? toJSON(decoded) : decoded);
            results.push({ id: c.id, value: written === undefined ? null : JSON.parse(written) });
        } catch (e) {
            results.push({ id: c.id, error: String(e) });
        }
    }
    fs.writeFileSync(resultsPath, JSON.stringify(results));
}

main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
});
