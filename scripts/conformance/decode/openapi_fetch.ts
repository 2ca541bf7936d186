// Decodes every case with openapi-fetch over openapi-typescript's types, as a caller's
// `client.GET(...)` (or PUT, POST, ...) reads an answer.
//
// usage: node conformance_decode.js CASES RESULTS   (openapi-fetch found through NODE_PATH)
//
// cargo xtask conformance copies this file beside the generated `<api>.d.ts` as
// conformance_decode.ts and transpiles it; the answers' types are checked apart, each body as the
// type `operations[<operation>]["responses"][<status>]["content"][<media>]` under `tsc --strict`.
// Each case ({"id", "media", "method", "path", "status", "body"}) is answered, by a `fetch` given
// to the client, as a Response with its status, media type and the answer's bytes; the client
// reads it through its own response handling (`data` for a success, `error` otherwise), and the
// value is written back with JSON.stringify. RESULTS gets [{"id", "value"} | {"id", "error"}].
import createClient from 'openapi-fetch';

declare const require: (module: string) => any;
declare const process: { argv: string[]; exitCode: number };

const fs = require('fs');

interface Case {
    id: string;
    media: string;
    method: string;
    path: string;
    status: string;
    body: unknown;
}

async function decode(c: Case): Promise<unknown> {
    const status = c.status === 'default' ? 500 : Number(c.status);
    const bytes = JSON.stringify(c.body);
    const client = createClient<any>({
        baseUrl: 'http://127.0.0.1',
        fetch: async () =>
            new Response(bytes, { status, headers: { 'Content-Type': c.media } }),
    });
    // Every path parameter gets a value, as a caller's would.
    const path: Record<string, string> = {};
    for (const [, name] of c.path.matchAll(/\{([^}]+)\}/g)) {
        path[name] = '1';
    }
    const call = (client as any)[c.method.toUpperCase()];
    if (typeof call !== 'function') {
        throw new Error(`openapi-fetch has no ${c.method.toUpperCase()}`);
    }
    const { data, error, response } = await call(c.path, { params: { path } });
    if (response.status !== status) {
        throw new Error(`answered ${status}, read ${response.status}`);
    }
    const read = response.ok ? data : error;
    const written = JSON.stringify(read);
    return written === undefined ? null : JSON.parse(written);
}

async function main(): Promise<void> {
    const [casesPath, resultsPath] = process.argv.slice(2);
    const cases: Case[] = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
    const results: { id: string; value?: unknown; error?: string }[] = [];
    for (const c of cases) {
        try {
            results.push({ id: c.id, value: await decode(c) });
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
