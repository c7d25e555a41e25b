/**
 * RUN step names as BuildKit shows them in progress and in error excerpts (dispatchRun's
 * customname): the instruction as written, flags and spacing kept, variables of the step
 * expanded with quotes kept, unset ones left as written, a heredoc's first line appended.
 * Found by scripts/parity.ts's step-name comparison (tsk re-serialised exec forms as JSON and
 * did not expand variables; COPY and WORKDIR showed their resolved paths).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { convertForTest } from "./convert_testutil.ts";
import { loadDefinition } from "../../llb/load.ts";

async function stepNames(source: string): Promise<string[]> {
  const r = await convertForTest(source);
  const { vertices } = loadDefinition(r.definition);
  return [...vertices.values()].map((v) => v.name).filter((n) => / (RUN|COPY|ADD|WORKDIR) /.test(n))
    .sort();
}

test("RUN step names: the text as written, variables expanded, quotes kept", async () => {
  const names = await stepNames(`FROM b
ENV WHO=world
ARG V=1
run echo "hi $WHO" $NOPE \\
   && echo   two
RUN ["sh", "-c", "echo $WHO"]
RUN --mount=type=secret,id=s,env=TOKEN --mount=type=tmpfs,target=/t echo \${WHO:-x} $TOKEN $V
RUN <<EOF
echo a
echo b
EOF
`);
  assert.deepEqual(names, [
    '[2/5] RUN echo "hi world" $NOPE    && echo   two',
    '[3/5] RUN ["sh", "-c", "echo world"]',
    "[4/5] RUN --mount=type=secret,id=s,env=TOKEN --mount=type=tmpfs,target=/t echo world **** 1",
    "[5/5] RUN <<EOF (echo a...)",
  ]);
});

test("COPY, ADD and WORKDIR step names: as written, expanded with quotes removed", async () => {
  const names = await stepNames(`FROM b
ENV D=/dst U=1000
WORKDIR /srv
workdir ../c
COPY ["dir", "file.txt", "/json/"]
COPY --chown=$U --from=b a $D/
add --chmod=644 x \${NOPE}/z
COPY <<EOF /etc/app.conf
x
EOF
`);
  assert.deepEqual(names, [
    "[2/7] WORKDIR /srv",
    "[3/7] WORKDIR ../c",
    "[4/7] COPY [dir, file.txt, /json/]",
    "[5/7] COPY --chown=1000 --from=b a /dst/",
    "[6/7] ADD --chmod=644 x /z",
    "[7/7] COPY <<EOF /etc/app.conf",
  ]);
});
