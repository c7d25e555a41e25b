/**
 * The parity corpus, second round: features the first round (scripts/parity_corpus.ts) did not
 * cover — ONBUILD chains, ARG scoping across stages with the platform ARGs in paths, ADD of
 * local tars with links and nested archives, ADD --chown/--chmod of archives, .dockerignore
 * edge cases, COPY of symlinks and dir forms, VOLUME then RUN, MAINTAINER, ENV self-references,
 * non-UTF-8 names, parser directives, and more failing builds. Same format as the first round;
 * a context key starting with `latin1:` is written with its name's bytes in Latin-1 (not UTF-8).
 */
import type { ParityCase } from "./parity_corpus.ts";

export const CASES2: ParityCase[] = [
  {
    name: "onbuild-chain",
    dockerfile: `FROM {{BB}} AS base
ONBUILD RUN echo base-trigger >> /log
ONBUILD WORKDIR /from-trigger
LABEL stage=base

FROM base AS mid
RUN echo mid >> /log && pwd >> /log
ONBUILD RUN echo mid-trigger >> /log
ONBUILD ENV MID=1

FROM mid AS leaf
RUN echo leaf >> /log && env | grep MID >> /log || true
`,
    target: "leaf",
  },
  {
    name: "onbuild-chain-mid",
    dockerfile: `FROM {{BB}} AS base
ONBUILD RUN echo base-trigger >> /log
ONBUILD ARG OBARG=ob-default
ONBUILD RUN echo "arg=$OBARG" >> /log

FROM base AS mid
ONBUILD COPY m.txt /m.txt
`,
    files: { "m.txt": "m\n" },
    buildArgs: { OBARG: "from-cli" },
  },
  {
    name: "arg-scoping",
    dockerfile: `ARG VERSION=1.0
ARG BASE={{BB}}
ARG TARGETARCH
ARG GLOBAL_ONLY=g
FROM \${BASE} AS one
ARG VERSION
ARG STAGEONLY=one
ARG TARGETARCH
RUN echo "v=$VERSION s=$STAGEONLY t=$TARGETARCH g=[$GLOBAL_ONLY]" > /one.txt

FROM \${BASE} AS two
RUN echo "v=[$VERSION] s=[$STAGEONLY] t=[$TARGETARCH]" > /two.txt
ARG VERSION=2.0
ARG TARGETOS
ARG TARGETPLATFORM
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDARCH
ENV PLAT=$TARGETPLATFORM OS=$TARGETOS VAR=x\${TARGETVARIANT}x BA=$BUILDARCH
WORKDIR /out/$TARGETOS/\${TARGETARCH:-noarch}
RUN echo "$VERSION $BUILDPLATFORM" > v.txt
COPY --from=one /one.txt /out/\${TARGETOS}-one.txt
ARG VERSION
RUN echo "again=$VERSION" > /again.txt
LABEL v=$VERSION os=$TARGETOS

FROM two AS three
RUN echo "inherited v=$VERSION os=$TARGETOS" > /three.txt
`,
    buildArgs: { GLOBAL_ONLY: "cli-g" },
  },
  {
    name: "arg-build-arg-override",
    dockerfile: `ARG TAG=latest
FROM {{BBREPO}}:\${TAG}
ARG TAG
ARG NUM=1
ARG EMPTYDEF=
ARG CLIONLY
ENV TAG_ENV=$TAG NUM=\${NUM} E=[$EMPTYDEF] C=[$CLIONLY]
RUN echo "$TAG $NUM [$EMPTYDEF] [$CLIONLY]" > /args
USER \${NUM}
`,
    buildArgs: { NUM: "42", EMPTYDEF: "set", CLIONLY: "" },
  },
  {
    name: "add-tar-links",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /opt/existing && echo keep > /opt/existing/keep && ln -s /opt/existing /opt/link-before
ADD links.tar /opt/
ADD nested.tar.gz /nested/
ADD single.txt.gz /single/
ADD dotslash.tar /dot/
`,
    files: {
      "links.tar": {
        tar: {
          "pkg/bin/tool": { content: "#!/bin/sh\n", mode: 0o755 },
          "pkg/lib/libx.so.1": "lib\n",
          "pkg/lib/libx.so": { symlink: "libx.so.1" },
          "pkg/abs": { symlink: "/etc/passwd" },
          "pkg/dangling": { symlink: "nope" },
          "pkg/hard": { hardlink: "pkg/lib/libx.so.1" },
          "pkg/private/": { dir: true, mode: 0o700 },
          "pkg/private/s": { content: "s\n", mode: 0o600 },
          "pkg/suid": { content: "u\n", mode: 0o4755 },
          "existing/new": "new\n",
        },
        plain: true,
      },
      "nested.tar.gz": {
        tar: { "inner.tar.gz": { tar: { "deep/x": "x\n" }, gzip: true }, "top.txt": "t\n" },
        gzip: true,
        plain: true,
      },
      "single.txt.gz": { gzipFile: "just one gzip'd file\n" },
      "dotslash.tar": { tar: { "a/b": "b\n" } },
    },
  },
  {
    name: "add-tar-chown-chmod",
    dockerfile: `FROM {{BB}}
ADD --chown=1000:1000 owned.tar /chown/
ADD --chown=app owned.tar /chown-name/
ADD --chmod=700 owned.tar /chmod/
ADD --chown=7:8 plain.txt /plain-chown/
`,
    files: {
      "owned.tar": {
        tar: { "d/f": { content: "f\n", mode: 0o640 }, "d/e/": { dir: true, mode: 0o750 } },
        owner: 1234,
      },
      "plain.txt": "p\n",
    },
  },
  {
    name: "dockerignore-edges",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
`,
    files: {
      ".dockerignore": `*
!src
src/**/*.tmp
!src/keep.tmp
!docs/README.md
!**/*.go
  !spaced.txt  
!a?c.txt
!x[0-9].txt
**/.DS_Store
!./dotslash.txt
!lib/
lib/sub/
!/rooted.txt
`,
      "Dockerfile.extra": "ignored\n",
      "src/main.c": "c\n",
      "src/x.tmp": "ignored\n",
      "src/deep/y.tmp": "ignored\n",
      "src/keep.tmp": "kept\n",
      "src/.DS_Store": "ignored\n",
      "docs/README.md": "kept\n",
      "docs/other.md": "ignored\n",
      "cmd/tool/main.go": "go\n",
      "main.go": "go\n",
      "spaced.txt": "kept\n",
      "abc.txt": "kept\n",
      "abbc.txt": "ignored\n",
      "x1.txt": "kept\n",
      "xa.txt": "ignored\n",
      "dotslash.txt": "kept?\n",
      "lib/a": "kept\n",
      "lib/sub/b": "ignored\n",
      "rooted.txt": "kept\n",
      "empty-dir": { dir: true },
    },
  },
  {
    name: "dockerignore-dockerfile",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
RUN ls -a /ctx > /listing
`,
    files: {
      ".dockerignore": "Dockerfile\n.dockerignore\n**/*.bak\n!important.bak\ndir/*\n!dir/keep\n",
      "a.txt": "a\n",
      "x.bak": "ignored\n",
      "sub/y.bak": "ignored\n",
      "important.bak": "kept\n",
      "dir/gone": "ignored\n",
      "dir/keep": "kept\n",
      "dir/sub/z": "ignored\n",
    },
  },
  {
    name: "copy-symlink-sources",
    dockerfile: `FROM {{BB}}
COPY link-file /as-file
COPY link-file link-dir /both/
COPY linkdir/inner.txt /through-link.txt
COPY tree /tree/
COPY tree/ /tree-slash
COPY link* /wild/
COPY rel-up /rel-up
`,
    files: {
      "real.txt": "real\n",
      "link-file": { symlink: "real.txt" },
      "dir/inner.txt": "inner\n",
      "dir/sub/more.txt": "more\n",
      "link-dir": { symlink: "dir" },
      "linkdir": { symlink: "dir" },
      "tree/f": "f\n",
      "tree/to-f": { symlink: "f" },
      "tree/to-parent": { symlink: "../real.txt" },
      "tree/abs": { symlink: "/etc/hostname" },
      "tree/dangling": { symlink: "missing" },
      "tree/to-dir": { symlink: "../dir" },
      "tree/sub/": { dir: true },
      "nested/x.txt": "x\n",
      "rel-up": { symlink: "nested/../real.txt" },
    },
  },
  {
    name: "copy-dir-forms",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /exists && echo e > /existing-file && mkdir -m 0700 /mode-kept && chown 9:9 /mode-kept
COPY dir /a
COPY dir/ /b/
COPY dir/. /c/
COPY dir/* /d/
COPY dir/*.txt /e/
COPY file.txt /exists
COPY file.txt /new-no-slash
COPY dir /mode-kept/
COPY ./ /whole/
COPY dir/sub/../top.txt /cleaned.txt
COPY ["dir", "file.txt", "/json/"]
WORKDIR /wd
COPY dir sub-rel
COPY file.txt ..
`,
    files: {
      "dir/top.txt": "top\n",
      "dir/other.md": "md\n",
      "dir/sub/inner.txt": "inner\n",
      "dir/sub/deeper/d.txt": "d\n",
      "dir/empty/": { dir: true },
      "file.txt": "file\n",
    },
  },
  {
    name: "copy-chown-names2",
    debian: true,
    dockerfile: `FROM {{DEB}}
ARG OWNER=daemon
ARG GROUP=mail
COPY --chown=$OWNER a.txt /primary-group
COPY --chown=\${OWNER}:\${GROUP} a.txt /both-names
COPY --chown=www-data:0 a.txt /name-numeric
COPY --chown=4242:mail a.txt /numeric-name
COPY --chown=4242 dir /numeric-dir/
COPY --chown=nobody:nogroup dir /nobody/
RUN chown -R games:users /nobody && ls -ln /nobody > /ls
`,
    files: { "a.txt": "a\n", "dir/x": "x\n", "dir/sub/y": "y\n" },
  },
  {
    name: "volume-then-run",
    dockerfile: `FROM {{BB}}
ENV DATA=/data
RUN mkdir -p /data /app/logs && echo before > /data/before
VOLUME $DATA /json-vol
VOLUME ["/app/cache", "/app/logs"]
RUN echo written > /data/x && mkdir -p /app/cache/sub && echo c > /app/cache/sub/c
COPY a.txt /data/
RUN rm /data/x
WORKDIR /app/logs
RUN echo log > app.log
`,
    files: { "a.txt": "a\n" },
  },
  {
    name: "maintainer-misc",
    dockerfile: `FROM {{BB}}
MAINTAINER Jane Doe <jane@example.com>
ENV SIG=SIGUSR1
STOPSIGNAL $SIG
HEALTHCHECK --interval=10s --retries=2 CMD ["true"]
EXPOSE 8080/TCP 9090/Udp 1000-1001/sctp
SHELL ["/bin/sh", "-xc"]
ENTRYPOINT echo "entry $0"
HEALTHCHECK NONE
`,
  },
  {
    name: "env-forms",
    dockerfile: `FROM {{BB}}
ENV A=1
ENV A=2 B=$A C=\${A}-x
ENV PATH=$PATH:/opt/bin D=a=b=c
ENV E="two words" F='single $A' G=\\$A H=a\\ b
ENV I=$UNDEFINED J=\${UNDEFINED:-def} K="\${A:+set}"
ENV L "old style $A with spaces"
ENV M=
ENV dotted.key=1 under_score=2
RUN env | grep -vE '^(HOSTNAME|SHLVL|PWD|HOME)=' | sort > /env
`,
  },
  {
    name: "non-utf8-names",
    dockerfile: `FROM {{BB}}
RUN mkdir /made && cd /made && touch "$(printf 'caf\\351')" "$(printf '\\377bytes')" && mkdir "$(printf 'd\\351')" && echo x > "$(printf 'd\\351/f\\377')" && ln -s "$(printf 'caf\\351')" link
`,
  },
  {
    name: "non-utf8-copy",
    dockerfile: `FROM {{BB}} AS made
RUN mkdir -p /m/sub && cd /m && touch "$(printf 'caf\\351')" "sub/$(printf '\\377x')" && ln -s "$(printf 'caf\\351')" link

FROM {{BB}}
COPY --from=made /m /copied/
COPY --from=made /m/caf* /m/link /picked/
`,
  },
  {
    // tsk fails while loading such a context (engine/ops/local_context.ts; docs/parity.md)
    name: "non-utf8-context",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
`,
    files: {
      "latin1:caf\u00e9.txt": "latin1\n",
      "latin1:dir\u00ff": { dir: true },
      "utf8-é.txt": "utf8\n",
    },
  },
  {
    name: "non-utf8-base",
    parent: {
      name: "non-utf8-parent",
      dockerfile: `FROM {{BB}}
RUN mkdir /base && cd /base && touch "$(printf 'caf\\351')" && mkdir "$(printf 'd\\377')" && echo x > "$(printf 'd\\377/f\\351')" && ln -s "$(printf 'd\\377')" link
`,
    },
    dockerfile: `FROM {{REG}}/parity/non-utf8-parent:1 AS made
RUN cd /base && touch "$(printf 'new\\351')" && rm "$(printf 'caf\\351')" && cat d*/f* > /read

FROM {{BB}}
COPY --from=made /base /copied/
COPY --from=made /base/link /base/d* /picked/
`,
  },
  {
    name: "hardlinks-copy",
    dockerfile: `FROM {{BB}}
COPY h1 /one/
COPY h2 /two/
COPY hl/ /hl/
COPY h1 h2 /both/
RUN ln /one/h1 /one/h1-link && ln /hl/a /hl-a-outside
`,
    files: {
      "h1": "shared\n",
      "h2": { hardlink: "h1" },
      "hl/a": "a\n",
      "hl/b": { hardlink: "hl/a" },
      "hl/sub/c": { hardlink: "hl/a" },
    },
  },
  {
    name: "directives",
    dockerfile: "#  Escape = `\n# check=skip=all\n\nFROM {{BB}}\nRUN echo one `\n  two > /o\n",
  },
  {
    name: "directive-after-comment",
    dockerfile: "# just a comment\n# escape=`\nFROM {{BB}}\nRUN echo a \\\n  b > /ab\n",
  },
  {
    name: "workdir-forms2",
    dockerfile: `FROM {{BB}}
USER app
WORKDIR /home/app/work
RUN touch mine && id > /home/app/work/id
USER root
ENV BASE=/srv
WORKDIR \${BASE}/a/b
WORKDIR ../c
RUN pwd > /srv/a/pwd
USER 1000:1000
WORKDIR /tmp/owned-numeric
USER app:nogroup
WORKDIR rel-as-app
`,
  },
  {
    name: "run-exec-forms",
    dockerfile: `FROM {{BB}}
ENV WHO=world
RUN ["echo", "$WHO"]
RUN ["sh", "-c", "echo $WHO > /exec-sh"]
RUN echo "$WHO" > /shell
RUN [ "sh" , "-c" , "echo spaced > /spaced" ]
RUN ["sh", "-c", "echo 'single' > /single"]
CMD [ "a b", "c" ]
ENTRYPOINT ["/bin/echo", "\\"quoted\\""]
`,
  },
  {
    name: "healthcheck-retries-zero",
    oldDocker: "v0.8 refused --retries=0 (current parse.go only refuses negative values)",
    dockerfile: `FROM {{BB}}
HEALTHCHECK --retries=0 --start-interval=2s CMD true
`,
  },
  // ---- failing builds ----
  {
    name: "err-onbuild-onbuild",
    fails: true,
    dockerfile: `FROM {{BB}}
ONBUILD ONBUILD RUN true
`,
  },
  {
    name: "err-onbuild-from",
    fails: true,
    dockerfile: `FROM {{BB}}
ONBUILD FROM {{BB}}
`,
  },
  {
    name: "err-copy-one-arg",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY a.txt
`,
    files: { "a.txt": "a\n" },
  },
  {
    name: "run-no-args",
    dockerfile: `FROM {{BB}}
RUN
`,
  },
  {
    name: "err-copy-dangling",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY dangling /x
`,
    files: { dangling: { symlink: "missing" } },
  },
  {
    name: "err-copy-symlink-outside",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY abs /x
`,
    files: { abs: { symlink: "/etc/passwd" } },
  },
  {
    name: "err-bad-escape",
    fails: true,
    dockerfile: "# escape=x\nFROM {{BB}}\n",
  },
  {
    name: "err-stopsignal",
    fails: true,
    dockerfile: `FROM {{BB}}
STOPSIGNAL NOPE
`,
  },
  {
    name: "err-healthcheck-no-cmd",
    fails: true,
    dockerfile: `FROM {{BB}}
HEALTHCHECK --interval=5s
`,
  },
  {
    name: "err-exec-not-found",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN ["/nonexistent", "arg"]
`,
  },
  {
    name: "err-run-killed",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN true && sh -c 'kill -9 $$' && true
`,
  },
  {
    name: "err-user-group-unknown",
    fails: true,
    dockerfile: `FROM {{BB}}
USER app:nosuchgroup
RUN true
`,
  },
  {
    name: "err-from-bad-platform",
    fails: true,
    dockerfile: `FROM --platform=linux/amd64/v9/x {{BB}}
RUN true
`,
  },
  {
    name: "err-stage-self",
    fails: true,
    dockerfile: `FROM {{BB}} AS a
COPY --from=a /x /y
`,
  },
  {
    name: "dup-stage-names",
    dockerfile: `FROM {{BB}} AS a
RUN echo first > /which
FROM a AS b
RUN cat /which > /b-base
FROM {{BB}} AS a
RUN echo second > /which
FROM {{BB}}
COPY --from=a /which /from-a
COPY --from=b /b-base /from-b
`,
  },
  {
    name: "err-bad-stage-name",
    fails: true,
    dockerfile: `FROM {{BB}} AS my_stage!
`,
  },
  {
    name: "add-tar-escape",
    dockerfile: `FROM {{BB}}
ADD evil.tar /opt/
ADD abs.tar /opt/abs/
`,
    files: {
      "evil.tar": { tar: { "escape": "x\n", "d/f": "f\n" }, prefix: "../../" },
      "abs.tar": { tar: { "etc/abs": "a\n" }, prefix: "/" },
    },
  },
  {
    name: "err-arg-syntax",
    fails: true,
    dockerfile: `FROM {{BB}}
ARG A=1 =2
`,
  },
  {
    name: "err-maintainer-empty",
    fails: true,
    dockerfile: `FROM {{BB}}
MAINTAINER
`,
  },
];
