# syntax=docker/dockerfile:1
# The Node server (npm start) as a container image: the esbuild bundle of src/server.ts and
# nothing else. The bundle holds every production dependency (the AWS SDK, busboy), so the
# image needs no node_modules; test/integration/container-layout.test.ts assembles exactly
# what the final stage copies (scripts/container-layout.mjs) and uploads through it.
#
#   docker build -t s3-stream-upload .
#   docker run -p 3000:3000 -e UPLOAD_BUCKET=my-bucket -e AWS_REGION=eu-west-1 s3-stream-upload
#
# UPLOAD_BUCKET (and S3_ENDPOINT for a non-AWS store) is required: the embedded S3 of
# `npm start` is a development dependency and is not in the image.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies for esbuild; no install scripts (the Node binary of the `node` package is
# not needed: the image has Node 24, and esbuild's binary comes from an optional dependency).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/esbuild-plugins.mjs scripts/
COPY src/ src/
RUN node scripts/build.mjs

FROM ${NODE_IMAGE}
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY --from=build /app/dist/server.mjs /app/dist/server.mjs.map dist/
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (the server drains, then exits 0);
# the flags are those of `npm start` (package.json), kept equal by the layout test.
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=100", "--no-parallel-scavenge", "dist/server.mjs"]
