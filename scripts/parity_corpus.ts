/**
 * The parity corpus: realistic Dockerfiles (Go/Node/Python/Rust-style multi-stage builds, nginx-
 * and apt-style images, entrypoint scripts, failing builds) with their build contexts, adapted to
 * an offline machine. `{{BB}}` stands for the busybox image, `{{DEB}}` for the debian one; cases
 * that need debian are skipped where only busybox exists. scripts/parity.ts builds each with
 * docker (BuildKit) and with tsk and compares the results.
 */
import { CASES2 } from "./parity_corpus2.ts";

/** One context entry: text content, or a file with a mode, a symlink, a hardlink, a dir, a tar. */
export type CtxEntry =
  | string
  | { content: string; mode?: number; mtime?: number }
  | { symlink: string }
  | { hardlink: string }
  | { dir: true; mode?: number }
  | {
    /** entries of the archive (a key ending in / is a dir) */
    tar: Record<string, CtxEntry>;
    gzip?: boolean;
    compress?: "xz" | "bzip2" | "zstd";
    owner?: number;
    /** member names without the leading `./` */
    plain?: boolean;
    /** a prefix put before every member name (e.g. `../../`, kept with tar -P) */
    prefix?: string;
  }
  /** a single gzip-compressed file (not a tar) */
  | { gzipFile: string };

export type ParityCase = {
  name: string;
  dockerfile: string;
  /** the Dockerfile's path in the context (default Dockerfile), passed with -f */
  file?: string;
  files?: Record<string, CtxEntry>;
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: string;
  /** a base image docker builds from this Dockerfile and pushes as {{REG}}/parity/NAME:1 first */
  parent?: { name: string; dockerfile: string };
  /** --label K=V */
  labels?: Record<string, string>;
  /** --secret id=ID,src=<ctx-relative file> */
  secrets?: Record<string, string>;
  /** expect both builders to fail; compare exit status and the error text */
  fails?: boolean;
  /** the case needs the debian image */
  debian?: boolean;
  /** a failing case dockerd 20.10 (BuildKit v0.8) still built: why (tsk must fail alone) */
  oldDockerSucceeds?: string;
  /** dockerd 20.10 (BuildKit v0.8) cannot build it: the reason (tsk is checked alone) */
  oldDocker?: string;
};

const entrypoint = `#!/bin/sh
set -e
if [ "\${1#-}" != "$1" ]; then
  set -- app "$@"
fi
exec "$@"
`;

export const CASES: ParityCase[] = [
  {
    name: "go-multistage",
    dockerfile: `ARG GO_VERSION=1.22
ARG BASE={{BB}}
FROM \${BASE} AS builder
ARG GO_VERSION
ARG TARGETOS TARGETARCH
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build echo "mod download $GO_VERSION" > /tmp/dl.log
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \\
    mkdir -p /out && printf '#!/bin/sh\\necho app %s/%s\\n' "$TARGETOS" "$TARGETARCH" > /out/app && chmod 0755 /out/app

FROM builder AS test
RUN echo test > /tested

FROM \${BASE}
LABEL org.opencontainers.image.source="https://example.com/app" \\
      org.opencontainers.image.version="\${GO_VERSION:-dev}"
COPY --from=builder /out/app /usr/local/bin/app
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve", "--port", "8080"]
`,
    files: {
      "go.mod": "module example.com/app\n\ngo 1.22\n",
      "go.sum": "",
      "main.go": "package main\n\nfunc main() {}\n",
      "cmd/app/main.go": "package main\n",
      ".dockerignore": "*.md\n.git\n",
      "README.md": "ignored\n",
    },
  },
  {
    name: "node-app",
    dockerfile: `FROM {{BB}}
ENV NODE_ENV=production \\
    NPM_CONFIG_LOGLEVEL=warn
RUN echo 'node:x:1000:' >> /etc/group && echo 'node:x:1000:1000::/home/node:/bin/sh' >> /etc/passwd && mkdir -p /home/node && chown node:node /home/node
WORKDIR /usr/src/app
COPY package*.json ./
RUN mkdir -p node_modules/.bin && echo '{}' > node_modules/.package-lock.json
COPY --chown=node:node . .
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \\
  CMD wget -qO- http://localhost:3000/health || exit 1
CMD ["node", "server.js"]
`,
    files: {
      "package.json": '{"name":"app","version":"1.0.0"}\n',
      "package-lock.json": '{"lockfileVersion":3}\n',
      "server.js": "console.log('hi')\n",
      "src/index.js": "module.exports = 1\n",
      "node_modules/left-pad/index.js": "x\n",
      "npm-debug.log": "log\n",
      "keep.log": "kept\n",
      ".dockerignore": "node_modules\n*.log\n!keep.log\nDockerfile\n.dockerignore\n",
    },
  },
  {
    name: "python-app",
    dockerfile: `FROM {{BB}} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=off
ENV VIRTUAL_ENV=/opt/venv
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
ARG APP_HOME=/app
WORKDIR $APP_HOME
RUN mkdir -p $VIRTUAL_ENV/bin && printf '#!/bin/sh\\necho py\\n' > $VIRTUAL_ENV/bin/python && chmod +x $VIRTUAL_ENV/bin/python

FROM base AS final
COPY requirements.txt .
RUN while read -r l; do echo "installed $l"; done < requirements.txt > /tmp/pip.log
COPY app/ ./app/
LABEL maintainer="Jane Doe <jane@example.com>" \\
      description="A multi-\\
line description"
SHELL ["/bin/sh", "-eu", "-c"]
RUN echo "shell=$0" > /shell.txt
CMD python -m app --bind 0.0.0.0:\${PORT:-8000}
`,
    files: {
      "requirements.txt": "flask==3.0\ngunicorn\n",
      "app/__init__.py": "",
      "app/__main__.py": "print('hi')\n",
      "app/templates/index.html": "<html></html>\n",
    },
  },
  {
    name: "rust-like",
    dockerfile: `ARG RUST_VERSION=1.77
ARG APP_NAME=server
FROM {{BB}} AS build
ARG APP_NAME
ARG PROFILE
ARG FEATURES=
WORKDIR /app
RUN --mount=type=bind,source=src,target=src \\
    --mount=type=bind,source=Cargo.toml,target=Cargo.toml \\
    --mount=type=cache,target=/app/target/,id=rust-target \\
    --mount=type=cache,target=/usr/local/cargo/registry/ \\
    set -e; \\
    cat Cargo.toml > /dev/null; ls src > /tmp/srcs; \\
    echo "\${PROFILE:-release} \${FEATURES:+with-features}" > /profile; \\
    mkdir -p /bin/out && cp /bin/busybox /bin/out/$APP_NAME

FROM {{BB}} AS final
ARG UID=10001
RUN echo "appuser:x:\${UID}:\${UID}::/nonexistent:/sbin/nologin" >> /etc/passwd
USER appuser
COPY --from=build /bin/out/server /bin/
COPY --from=0 /profile /profile
COPY --from={{BB}} /bin/busybox /opt/busybox
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["/bin/server", "true"]
`,
    files: {
      "Cargo.toml": '[package]\nname = "server"\n',
      "src/main.rs": "fn main() {}\n",
      "src/lib.rs": "",
    },
  },
  {
    name: "nginx-like",
    dockerfile: `FROM {{BB}}
LABEL maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"
ENV NGINX_VERSION   1.25.4
ENV NJS_VERSION     0.8.3
RUN set -x \\
    && echo 'nginx:x:101:' >> /etc/group \\
    && echo 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin' >> /etc/passwd \\
    && mkdir -p /var/log/nginx /var/cache/nginx /etc/nginx/conf.d \\
    && ln -sf /dev/stdout /var/log/nginx/access.log \\
    && ln -sf /dev/stderr /var/log/nginx/error.log \\
    && mkdir /docker-entrypoint.d
COPY docker-entrypoint.sh /
COPY 10-listen-on-ipv6-by-default.sh /docker-entrypoint.d
COPY --chmod=0755 20-envsubst-on-templates.sh /docker-entrypoint.d/
COPY nginx.conf /etc/nginx/nginx.conf
COPY conf.d/ /etc/nginx/conf.d/
COPY --chown=nginx:nginx html /usr/share/nginx/html
ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 80 443/tcp 53/udp 8000-8002
VOLUME ["/var/cache/nginx"]
VOLUME /var/log/nginx /tmp/a
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
`,
    files: {
      "docker-entrypoint.sh": { content: entrypoint, mode: 0o755 },
      "10-listen-on-ipv6-by-default.sh": { content: "#!/bin/sh\n", mode: 0o775 },
      "20-envsubst-on-templates.sh": { content: "#!/bin/sh\n", mode: 0o644 },
      "nginx.conf": "user nginx;\nworker_processes auto;\n",
      "conf.d/default.conf": "server { listen 80; }\n",
      "html/index.html": "<h1>Welcome</h1>\n",
      "html/50x.html": "<h1>Error</h1>\n",
    },
  },
  {
    name: "debian-apt",
    debian: true,
    dockerfile: `FROM {{DEB}}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN set -eux; \\
    groupadd -r app --gid=999; \\
    useradd -r -g app --uid=999 --home-dir=/var/lib/app --shell=/bin/bash app; \\
    mkdir -p /var/lib/app; chown app:app /var/lib/app
RUN apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /usr/share/doc/*
COPY --chown=app:app entrypoint.sh /usr/local/bin/
COPY --chown=app --chmod=750 data/ /var/lib/app/data/
RUN ln -s usr/local/bin/entrypoint.sh /entrypoint.sh
WORKDIR /var/lib/app
USER app
VOLUME /var/lib/app/data
ENTRYPOINT ["entrypoint.sh"]
CMD ["postgres"]
`,
    files: {
      "entrypoint.sh": { content: entrypoint, mode: 0o755 },
      "data/pg_hba.conf": "local all all trust\n",
      "data/sub/x.conf": "x\n",
    },
  },
  {
    name: "entrypoint-cmd-reset",
    dockerfile: `FROM {{BB}} AS parent
CMD ["echo", "parent"]
ENTRYPOINT ["/bin/sh", "-c"]

FROM parent AS child
ENTRYPOINT /bin/echo child

FROM child AS grandchild
CMD echo "shell form $HOME"
`,
    target: "grandchild",
  },
  {
    name: "entrypoint-inherit",
    dockerfile: `FROM {{BB}} AS parent
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["run"]

FROM parent
ENV X=1
ENTRYPOINT ["/other.sh"]
`,
  },
  {
    name: "args-expansion",
    dockerfile: `ARG BASE_IMAGE={{BB}}
ARG GLOBAL=global-value
ARG UNUSED
FROM $BASE_IMAGE AS base
ARG GLOBAL
ARG LOCAL=local-value
ARG EMPTY=
ARG UNSET
ARG OVERRIDE=default
ENV A=\${LOCAL:-fallback} \\
    B=\${UNSET:-fallback} \\
    C=\${LOCAL:+alt} \\
    D=\${UNSET:+alt} \\
    E=\${EMPTY:-empty-fallback} \\
    G="\${GLOBAL}" \\
    H='\${GLOBAL}' \\
    I=\\$GLOBAL \\
    J=$OVERRIDE
ARG TARGETPLATFORM
ARG BUILDPLATFORM
ARG TARGETOS TARGETARCH TARGETVARIANT BUILDOS BUILDARCH
LABEL platform="$TARGETPLATFORM" build="$BUILDPLATFORM" os=$TARGETOS arch=$TARGETARCH
RUN echo "$GLOBAL $LOCAL $OVERRIDE [$UNSET] $TARGETPLATFORM" > /args.txt && env | sort > /env.txt

FROM base AS noglobal
RUN echo "[\${GLOBAL}] [\${LOCAL}]" > /scoped.txt
ENV K=\${NOPE:-\${LOCAL:-nested}}
`,
    buildArgs: { OVERRIDE: "from-cli", NOT_DECLARED: "x" },
  },
  {
    name: "copy-chown-chmod",
    dockerfile: `FROM {{BB}}
RUN echo 'grp:x:2000:' >> /etc/group && echo 'usr:x:1500:2000::/home/usr:/bin/sh' >> /etc/passwd
COPY --chown=1000:1000 a.txt /numeric/
COPY --chown=usr a.txt /name-only/
COPY --chown=usr:grp a.txt /name-group/
COPY --chown=:grp a.txt /group-only/
COPY --chown=1500 dir /dir-owned/
COPY --chmod=640 a.txt /chmod/a.txt
COPY --chmod=755 dir /chmod-dir/
COPY --chown=nobody:nogroup --chmod=0600 a.txt b.txt /multi/
ADD --chown=usr:grp b.txt /added/
`,
    files: {
      "a.txt": "a\n",
      "b.txt": { content: "b\n", mode: 0o755 },
      "dir/x": "x\n",
      "dir/sub/y": { content: "y\n", mode: 0o600 },
    },
  },
  {
    name: "add-archives",
    dockerfile: `FROM {{BB}}
ADD app.tar.gz /opt/
ADD plain.tar /plain/
ADD notatar.tar /files/
ADD config.txt /etc/app/
ADD config.txt /etc/app/renamed.conf
ADD dir/ /opt/dir/
COPY app.tar.gz /copied/
WORKDIR /opt
ADD plain.tar rel/
`,
    files: {
      "app.tar.gz": {
        tar: { "app/bin/run": "#!/bin/sh\n", "app/README": "readme\n", "app/empty/": "" },
        gzip: true,
      },
      "plain.tar": { tar: { "p/x": "x\n", "p/y": "y\n" } },
      "notatar.tar": "just text\n",
      "config.txt": "k=v\n",
      "dir/a": "a\n",
    },
  },
  {
    name: "dockerignore",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
`,
    files: {
      ".dockerignore": `# comment
**/*.md
!README.md
docs/**
!docs/keep/**
.git
*/temp*
**/__pycache__
/secret.txt
build/
!build/keep.txt
`,
      "README.md": "kept\n",
      "CHANGES.md": "ignored\n",
      "sub/notes.md": "ignored\n",
      "docs/a.txt": "ignored\n",
      "docs/keep/b.txt": "kept\n",
      "docs/keep/c.md": "md\n",
      ".git/HEAD": "ref\n",
      "sub/tempfile": "ignored\n",
      "sub/deep/tempfile": "kept\n",
      "pkg/__pycache__/m.pyc": "ignored\n",
      "secret.txt": "ignored\n",
      "sub/secret.txt": "kept\n",
      "build/out.bin": "ignored\n",
      "build/keep.txt": "kept\n",
      "main.c": "int main;\n",
    },
  },
  {
    name: "workdir-user",
    dockerfile: `FROM {{BB}}
RUN echo 'staff2:x:3000:' >> /etc/group && echo 'worker:x:3001:3000::/home/worker:/bin/sh' >> /etc/passwd
WORKDIR /srv
WORKDIR app
WORKDIR ./sub/../data
RUN pwd > /pwd1
ENV DIR=/var/lib/thing
WORKDIR $DIR/\${SUB:-inner}
RUN pwd > /pwd2
USER worker
WORKDIR /home/worker/created-by-user
RUN id > /tmp/id1 && pwd > /tmp/pwd3
USER 3001:3000
RUN id > /tmp/id2
USER root:staff2
RUN id > /tmp/id3
USER 1234
WORKDIR /opt/missing-user
USER worker:3000
`,
  },
  {
    name: "context-fs",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
COPY link-to-dir /via-dir-link/
COPY link-to-file /via-file-link
COPY ["file with spaces.txt", "/spaced dest/"]
COPY ünïcödé.txt /u/
COPY empty /empty-copy/
COPY setuid /bin/
`,
    files: {
      "file with spaces.txt": "spaces\n",
      "ünïcödé.txt": "unicode\n",
      "dir/inner.txt": "inner\n",
      "dir/.hidden": "hidden\n",
      "link-to-dir": { symlink: "dir" },
      "link-to-file": { symlink: "dir/inner.txt" },
      "abs-link": { symlink: "/etc/passwd" },
      "dangling": { symlink: "does/not/exist" },
      "hard1": "hard\n",
      "hard2": { hardlink: "hard1" },
      "empty": { dir: true },
      "private": { content: "secret\n", mode: 0o600 },
      "exec.sh": { content: "#!/bin/sh\n", mode: 0o750 },
      "setuid": { content: "suid\n", mode: 0o4755 },
      "sticky": { dir: true, mode: 0o1777 },
      "old": { content: "old\n", mtime: 1000000000 },
    },
  },
  {
    name: "whiteouts",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /data/keep /data/gone /data/opaque && echo 1 > /data/keep/f && echo 2 > /data/gone/f \\
    && echo 3 > /data/opaque/old && echo 4 > /data/file-to-dir && mkdir /data/dir-to-file \\
    && echo 5 > /data/dir-to-file/x && ln -s keep /data/link
RUN rm -rf /data/gone /etc/group && rm -rf /data/opaque && mkdir /data/opaque && echo new > /data/opaque/new \\
    && rm /data/file-to-dir && mkdir /data/file-to-dir && rm -r /data/dir-to-file && echo f > /data/dir-to-file \\
    && rm /data/link && ln -s gone /data/link
RUN chmod 4755 /data/keep/f && chmod 1777 /data/opaque && chown 12:34 /data/keep && touch -d @1234567890 /data/keep/f
`,
  },
  {
    name: "healthcheck-variants",
    dockerfile: `FROM {{BB}} AS hc
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD ["wget", "-q", "http://x"]

FROM hc AS shellform
HEALTHCHECK CMD curl -f http://localhost/ || exit 1

FROM shellform AS none
HEALTHCHECK NONE
`,
    target: "none",
  },
  {
    name: "healthcheck-shell",
    dockerfile: `FROM {{BB}}
HEALTHCHECK --interval=1m30s CMD curl -f http://localhost/ || exit 1
`,
  },
  {
    name: "onbuild",
    dockerfile: `FROM {{BB}} AS parent
ONBUILD RUN echo "triggered" > /onbuild.txt
ONBUILD COPY marker /marker
ONBUILD ENV FROM_ONBUILD=yes

FROM parent AS child
RUN cat /onbuild.txt

FROM parent AS final
LABEL x=y
`,
    target: "final",
    files: { marker: "m\n" },
  },
  {
    name: "onbuild-child",
    dockerfile: `FROM {{BB}} AS parent
ONBUILD RUN echo "triggered" > /onbuild.txt
ONBUILD COPY marker /marker
ONBUILD ENV FROM_ONBUILD=yes

FROM parent AS child
RUN cat /onbuild.txt
`,
    files: { marker: "m\n" },
  },
  {
    name: "shell-instr",
    dockerfile: `FROM {{BB}}
SHELL ["/bin/sh", "-ec"]
RUN echo "$0 $-" > /shell1
SHELL ["/bin/ash", "-c"]
ENTRYPOINT exec /bin/echo hello
CMD ["ignored"]
`,
  },
  {
    name: "labels-env-quoting",
    dockerfile: `FROM {{BB}}
LABEL "com.example.vendor"="ACME Incorporated"
LABEL com.example.label-with-value="foo" version="1.0" \\
      description="This text illustrates \\
that label-values can span multiple lines."
LABEL multi.label1="value1" multi.label2="value2" other="value3"
LABEL spaced=hello\\ world quote="a \\"quoted\\" word" single='single $HOME'
ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog \\
    MY_CAT=fluffy
ENV OLD_STYLE value with spaces
ENV EMPTY=""
LABEL version="2.0"
EXPOSE 80/tcp 80/udp 9000-9001/udp
`,
  },
  {
    name: "run-mounts",
    dockerfile: `FROM {{BB}} AS assets
RUN mkdir -p /assets && echo asset > /assets/a.txt

FROM {{BB}}
WORKDIR /work
RUN --mount=type=cache,target=/var/cache/thing,sharing=locked echo cached > /var/cache/thing/x && ls /var/cache/thing > /cache-ls
RUN --mount=type=bind,from=assets,source=/assets,target=/mnt/assets cp /mnt/assets/a.txt /from-bind.txt
RUN --mount=type=bind,target=/ctx cp /ctx/input.txt /from-ctx.txt
RUN --mount=type=tmpfs,target=/scratch echo tmp > /scratch/t && cat /scratch/t > /from-tmpfs.txt
RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-len
RUN --mount=type=secret,id=token,target=/custom/path,mode=0400 ls -l /custom/path | cut -c1-10 > /secret-mode
RUN ls -la /run /mnt > /mounts-gone 2>&1 || true
`,
    files: { "input.txt": "input\n", "token.txt": "s3cr3t" },
    secrets: { token: "token.txt" },
  },
  {
    name: "target-platform",
    dockerfile: `FROM --platform=$BUILDPLATFORM {{BB}} AS xbuild
ARG TARGETPLATFORM BUILDPLATFORM TARGETARCH
RUN echo "build on $BUILDPLATFORM for $TARGETPLATFORM ($TARGETARCH)" > /built

FROM {{BB}} AS release
COPY --from=xbuild /built /built
ENV STAGE=release

FROM release AS debug
ENV STAGE=debug
RUN echo debug > /debug
`,
    target: "release",
    platform: "linux/amd64",
  },
  {
    name: "copy-from-index-and-dest-forms",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /a/b && echo 1 > /a/b/one && echo 2 > /a/two && ln -s b/one /a/link

FROM {{BB}}
COPY --from=0 /a /copy-a
COPY --from=0 /a/ /copy-a-slash/
COPY --from=0 /a/b/one /a/two /many/
COPY --from=0 /a/*o /glob/
COPY --from=0 /a/link /link-followed
COPY --from=0 /a/b/one /renamed
COPY --from=0 /a/b /nested/deeper/
COPY f.txt relative-dest
WORKDIR /w
COPY f.txt .
COPY f.txt ./sub/
`,
    files: { "f.txt": "f\n" },
  },
  {
    name: "heredocs",
    oldDocker: "dockerfile 1.4 heredocs (BuildKit v0.10)",
    dockerfile: `# syntax=docker/dockerfile:1
FROM {{BB}}
RUN <<EOF
set -e
echo one > /h1
echo two >> /h1
EOF
RUN <<-EOT sh
	echo tabbed > /h2
	EOT
COPY <<EOF /etc/app.conf
name=\${HOSTNAME:-x}
EOF
COPY <<'EOF' /etc/literal.conf
name=$HOME
EOF
COPY --chmod=755 <<EOF /usr/local/bin/hello
#!/bin/sh
echo hello
EOF
RUN <<A cat > /h3 && <<B cat > /h4
a
A
b
B
`,
  },
  {
    name: "copy-link",
    oldDocker: "COPY --link (dockerfile 1.4, BuildKit v0.10)",
    dockerfile: `FROM {{BB}}
COPY --link a.txt /linked/
COPY --link --chown=1:2 dir/ /linked-dir/
RUN echo after > /after
`,
    files: { "a.txt": "a\n", "dir/x": "x\n" },
  },
  {
    name: "sde-mtimes",
    oldDocker: "SOURCE_DATE_EPOCH build arg (BuildKit v0.11)",
    dockerfile: `FROM {{BB}}
COPY a.txt /a.txt
RUN echo x > /new
`,
    buildArgs: { SOURCE_DATE_EPOCH: "1700000000" },
    files: { "a.txt": "a\n" },
  },
  // ---- failing builds: exit status and error text ----
  {
    name: "err-unknown-instruction",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN true
FOOBAR something
`,
  },
  {
    name: "err-copy-missing",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY does-not-exist.txt /x
`,
    files: { "present.txt": "p\n" },
  },
  {
    name: "err-run-fails",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN echo before
RUN exit 3
`,
  },
  {
    name: "err-missing-target",
    fails: true,
    target: "nope",
    dockerfile: `FROM {{BB}} AS one
RUN true
`,
  },
  {
    name: "err-copy-from-missing",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY --from=builder /x /x
`,
  },
  {
    name: "err-empty-from",
    fails: true,
    dockerfile: `ARG IMG
FROM $IMG
RUN true
`,
  },
  {
    name: "err-no-from",
    fails: true,
    dockerfile: `RUN true
`,
  },
  {
    name: "err-unknown-flag",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY --chmood=644 a.txt /a
`,
    files: { "a.txt": "a\n" },
  },
];

/** More real-world shapes: stage names in any case, scratch finals, symlinked destinations. */
CASES.push(
  {
    name: "stage-name-case",
    dockerfile: `FROM {{BB}} AS Builder
RUN echo built > /out
FROM builder AS Second
COPY --from=BUILDER /out /again
FROM {{BB}}
COPY --from=second /again /final
COPY --from=Builder /out /out
`,
  },
  {
    name: "scratch-final",
    dockerfile: `FROM {{BB}} AS tools
RUN mkdir -p /rootfs/bin /rootfs/etc && cp /bin/busybox /rootfs/bin/ && echo 'root:x:0:0::/:/bin/sh' > /rootfs/etc/passwd

FROM scratch
COPY --from=tools /rootfs/ /
ENV APP_ENV=prod
USER 1000
ENTRYPOINT ["/bin/busybox"]
CMD ["sh"]
`,
  },
  {
    name: "copy-into-symlinks",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /real/dir /opt && ln -s real /linkdir && ln -s /real/dir /opt/abs && echo old > /real/file && ln -s file /real/filelink \\
    && mkdir -m 0700 /private && echo p > /private/p
COPY a.txt /linkdir/
COPY a.txt /opt/abs/
COPY a.txt /real/filelink
COPY dir/ /private/
COPY dir /linkdir/merged/
`,
    files: { "a.txt": "a\n", "dir/x": "x\n", "dir/sub/y": "y\n" },
  },
  {
    name: "user-env-run",
    dockerfile: `FROM {{BB}}
ARG APP_USER=worker
ARG PORT=8080
RUN echo "$APP_USER:x:4000:4000::/home/$APP_USER:/bin/sh" >> /etc/passwd && echo "$APP_USER:x:4000:" >> /etc/group && mkdir -p /home/$APP_USER && chown $APP_USER /home/$APP_USER
ENV PATH=/opt/app/bin:$PATH
USER $APP_USER
RUN echo "$HOME $USER $(id -u):$(id -g)" > /tmp/who && env | grep -v HOSTNAME | sort > /tmp/env && touch /tmp/owned
EXPOSE $PORT
STOPSIGNAL 9
CMD []
`,
  },
  {
    name: "add-tar-owners",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /opt/app && echo keep > /opt/app/existing && chmod 0750 /opt/app
ADD owned.tar.gz /opt/
ADD owned.tar.gz /again/
`,
    files: {
      "owned.tar.gz": {
        tar: { "app/bin/tool": "#!/bin/sh\n", "app/conf/x.conf": "x\n" },
        gzip: true,
        owner: 1234,
      },
    },
  },
  {
    name: "err-user-unknown",
    fails: true,
    dockerfile: `FROM {{BB}}
USER nosuchuser
RUN true
`,
  },
  {
    name: "copy-wildcard-nomatch",
    dockerfile: `FROM {{BB}}
COPY *.nomatch /x/
`,
    files: { "a.txt": "a\n" },
  },
  {
    name: "copy-multi-to-file",
    dockerfile: `FROM {{BB}}
COPY a.txt b.txt /notadir
COPY *.txt /notadir2
`,
    files: { "a.txt": "a\n", "b.txt": "b\n" },
  },
  {
    name: "chown-unknown-user",
    dockerfile: `FROM {{BB}}
COPY --chown=nosuchuser:nosuchgroup a.txt /a
COPY --chown=nosuchuser a.txt /b
`,
    files: { "a.txt": "a\n" },
  },
);

/** File-system edge cases a RUN makes, and more failing builds. */
CASES.push(
  {
    name: "run-fs-edges",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /x && mkfifo /x/fifo && ln /bin/busybox /x/hl-to-lower && echo n > /x/n1 && ln /x/n1 /x/n2 \\
    && chmod 0700 /bin && chown 5:6 /etc/passwd && touch -d @1234567890 /etc/group \\
    && mkdir -m 2775 /x/setgid && ln -s $(printf 't%.0s' $(seq 1 150)) /x/longlink \\
    && mkdir -p /x/$(printf 'd%.0s' $(seq 1 90))/$(printf 'e%.0s' $(seq 1 90)) \\
    && echo deep > /x/$(printf 'd%.0s' $(seq 1 90))/$(printf 'e%.0s' $(seq 1 90))/$(printf 'f%.0s' $(seq 1 90)) \\
    && printf 'x' > '/x/sp ace' && mkdir /x/empty
RUN rm /x/n1 && echo changed > /x/n2 && rm -rf /x/empty && mkdir /x/empty && rm /bin/vi && ln -s busybox /bin/vi2
`,
  },
  {
    name: "err-run-missing-secret",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN --mount=type=secret,id=nope,required cat /run/secrets/nope
`,
  },
  {
    name: "err-copy-from-bad-index",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY --from=5 /x /x
`,
  },
  {
    name: "err-bad-chmod",
    fails: true,
    oldDockerSucceeds: "v0.8 took --chmod=999; current dispatchCopy refuses a non-octal mode",
    dockerfile: `FROM {{BB}}
COPY --chmod=999 a.txt /a
`,
    files: { "a.txt": "a\n" },
  },
  {
    name: "err-bad-expose",
    fails: true,
    dockerfile: `FROM {{BB}}
EXPOSE 80/xyz
`,
  },
  {
    name: "err-bad-healthcheck",
    fails: true,
    dockerfile: `FROM {{BB}}
HEALTHCHECK --interval=abc CMD true
`,
  },
  {
    name: "err-workdir-on-file",
    fails: true,
    dockerfile: `FROM {{BB}}
RUN echo f > /afile
WORKDIR /afile/sub
`,
  },
  {
    name: "err-missing-image",
    fails: true,
    dockerfile: `FROM {{REG}}/library/nosuchimage:1.0
RUN true
`,
  },
  {
    name: "err-env-no-value",
    fails: true,
    dockerfile: `FROM {{BB}}
ENV ONLYKEY
`,
  },
  {
    name: "cmd-broken-json",
    dockerfile: `FROM {{BB}}
CMD ["unterminated
`,
  },
);

/** Dockerfile text shapes: comments inside RUN, escape directive, CRLF, BOM, custom file names. */
CASES.push(
  {
    name: "run-comments-continuations",
    dockerfile: `FROM {{BB}}
RUN set -e; \\
    # a comment between continuation lines
    echo one > /one; \\

    echo two > /two
RUN ["sh", "-c", "echo $HOME > /home-json"]
CMD ["sh", "-c", "echo $HOME"]
LABEL "unicode.label"="ünïcödé ✓" dollar='$NOPE'
ENV GREETING="héllo wörld"
`,
  },
  {
    name: "escape-directive",
    dockerfile:
      "# escape=`\nFROM {{BB}}\nRUN echo a `\n    && echo b > /ab\nCOPY a.txt /dir\\\\name/\nENV P=C:\\\\path\n",
    files: { "a.txt": "a\n" },
  },
  {
    name: "crlf-bom",
    dockerfile:
      '\ufeffFROM {{BB}}\r\nRUN echo crlf > /crlf \\\r\n    && echo more >> /crlf\r\nENV A=1 \\\r\n    B=2\r\nCMD ["sh"]\r\n',
  },
  {
    name: "custom-dockerfile-name",
    file: "build/app.Dockerfile",
    dockerfile: `FROM {{BB}}
COPY . /ctx/
`,
    files: {
      "build/app.Dockerfile.dockerignore": "secret*\n",
      ".dockerignore": "*.txt\n",
      "secret.key": "s\n",
      "keep.txt": "k\n",
    },
  },
  {
    name: "err-required-var",
    fails: true,
    dockerfile: `FROM {{BB}}
ARG NEEDED
ENV X=\${NEEDED:?NEEDED must be set}
`,
  },
);

/** ARG/ENV interplay, symlinked WORKDIR, every archive compression ADD unpacks, CLI labels. */
CASES.push(
  {
    name: "arg-env-interplay",
    dockerfile: `FROM {{BB}}
ENV X=env
ARG X=arg
RUN echo "$X" > /x
ARG Y=argy
ENV Y=env-$Y
RUN echo "$Y" > /y
ARG Z
ENV Z=\${Z:-zdefault}
RUN echo "$Z" > /z && env | grep -E '^(X|Y|Z)=' | sort > /env
`,
    buildArgs: { Z: "from-cli" },
  },
  {
    name: "workdir-symlink",
    dockerfile: `FROM {{BB}}
RUN mkdir -p /real && ln -s /real /link && ln -s missing-target /dangling
WORKDIR /link/sub
RUN pwd > /pwd && touch here
WORKDIR /dangling
RUN pwd > /pwd2
`,
  },
  {
    name: "add-compressions",
    dockerfile: `FROM {{BB}}
ADD a.tar.xz /xz/
ADD a.tar.bz2 /bz2/
ADD a.tar.zst /zst/
ADD a.tar.gz /opt/app
ADD a.tgz /tgz
`,
    files: {
      "a.tar.xz": { tar: { "f/x": "x\n" }, compress: "xz" },
      "a.tar.bz2": { tar: { "f/b": "b\n" }, compress: "bzip2" },
      "a.tar.zst": { tar: { "f/z": "z\n" }, compress: "zstd" },
      "a.tar.gz": { tar: { "f/g": "g\n" }, gzip: true },
      "a.tgz": { tar: { "f/t": "t\n" }, gzip: true },
    },
  },
  {
    name: "cli-labels",
    dockerfile: `FROM {{BB}}
LABEL from.file=1 shared=file
`,
    labels: { "from.cli": "2", shared: "cli" },
  },
  {
    name: "err-copy-ignored-file",
    fails: true,
    dockerfile: `FROM {{BB}}
COPY logs/app.log /app.log
`,
    files: { ".dockerignore": "logs\n", "logs/app.log": "l\n" },
  },
);

/** What a RUN sees: hostname, /etc/hosts, umask, groups, /dev, capabilities, mounts. */
CASES.push({
  name: "run-environment",
  dockerfile: `FROM {{BB}}
RUN echo 'staff:x:50:worker' >> /etc/group && echo 'worker:x:3001:3001::/home/worker:/bin/sh' >> /etc/passwd && echo 'worker:x:3001:' >> /etc/group
RUN hostname > /hostname; cat /etc/hosts > /hosts; umask > /umask; id > /id; pwd > /pwd; \\
    ls -A /dev | sort > /devlist; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status > /caps; \\
    ulimit -n > /nofile; env | sort > /env; cat /etc/resolv.conf | grep -v '^#' > /resolv 2>&1; \\
    awk '$2 == "/" || $2 == "/proc" || $2 == "/dev" || $2 == "/sys" {print $2, $3}' /proc/mounts | sort > /mounts; true
USER worker
RUN id > /tmp/id-worker; umask > /tmp/umask-worker; echo $HOME > /tmp/home-worker
`,
});

/** ADD <url>: file name, mode, Last-Modified, archives not unpacked, --chmod/--chown. */
CASES.push({
  name: "add-url",
  dockerfile: `FROM {{BB}}
ADD {{HTTP}}/remote.txt /dl/
ADD {{HTTP}}/remote.txt /dl/renamed.txt
ADD {{HTTP}}/remote.tar.gz /dl/archive/
ADD {{HTTP}}/sub/tool.sh?version=1 /dl/q/
ADD --chmod=755 --chown=1:2 {{HTTP}}/sub/tool.sh /usr/local/bin/tool
WORKDIR /w
ADD {{HTTP}}/remote.txt .
`,
});

CASES.push({
  name: "heredoc-chmod",
  oldDocker: "dockerfile 1.4 heredocs (BuildKit v0.10)",
  dockerfile: `FROM {{BB}}
COPY --chmod=u+x,g+w <<EOF /symbolic.sh
#!/bin/sh
EOF
COPY --chmod=700 <<EOF /numeric.sh
#!/bin/sh
EOF
COPY <<EOF /plain.txt
plain
EOF
`,
});

/** Images with no or only metadata layers. */
CASES.push(
  {
    name: "scratch-metadata-only",
    oldDocker: "docker save cannot export an image without layers ('empty export')",
    dockerfile: `FROM scratch
ENV A=1
LABEL x=y
CMD ["/app"]
`,
  },
  {
    name: "scratch-workdir",
    dockerfile: `FROM scratch
WORKDIR /app
USER 1000:1000
WORKDIR /app/data
`,
  },
);

/** ONBUILD triggers of a pushed base image (docker builds and pushes it first). */
CASES.push({
  name: "onbuild-from-image",
  parent: {
    name: "onbuild-parent",
    dockerfile: `FROM {{BB}}
ONBUILD RUN echo trig > /trig
ONBUILD COPY marker /marker
ONBUILD ENV OB=1
CMD ["sh"]
`,
  },
  dockerfile: `FROM {{REG}}/parity/onbuild-parent:1
RUN cat /trig /marker > /both
`,
  files: { marker: "m\n" },
});

CASES.push({
  name: "copy-link-existing-dirs",
  oldDocker: "COPY --link (dockerfile 1.4, BuildKit v0.10); see docs/parity.md",
  dockerfile: `FROM {{BB}}
RUN mkdir -m 0700 /private && chown 5:5 /private && mkdir /real && ln -s real /linkdir
COPY --link a.txt /private/
COPY --link a.txt /linkdir/
COPY --link --chown=1:2 a.txt /usr/share/nested/
`,
  files: { "a.txt": "a\n" },
});

CASES.push(...CASES2);
