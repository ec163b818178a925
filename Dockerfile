# Build stage: compile TypeScript with decorator metadata (tsc): the emulator package, then the server.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/iamport-emulator/package.json ./packages/iamport-emulator/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY packages/iamport-emulator/tsconfig.json packages/iamport-emulator/tsconfig.build.json ./packages/iamport-emulator/
COPY packages/iamport-emulator/src ./packages/iamport-emulator/src
COPY src ./src
RUN npm run build && npm prune --omit=dev

# The Iamport emulator alone (docker build --target emulator .): `iamport-emulator`, configured by
# IAMPORT_EMULATOR_* and PORTONE_EMULATOR_* variables (packages/iamport-emulator/README.md): Iamport V1
# on 4010 and PortOne V2 on 4011. It listens on 127.0.0.1 unless IAMPORT_EMULATOR_HOST says otherwise;
# in a container, 0.0.0.0.
FROM node:20-bookworm-slim AS emulator
ENV NODE_ENV=production IAMPORT_EMULATOR_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages/iamport-emulator/package.json ./
COPY --from=build /app/packages/iamport-emulator/dist ./dist
USER node
EXPOSE 4010 4011
CMD ["node", "dist/main.js"]

# Runtime stage (the default): compiled JavaScript and production dependencies only. The emulator
# package comes along: a development start without Iamport keys runs it in-process.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages/iamport-emulator/package.json ./packages/iamport-emulator/
COPY --from=build /app/packages/iamport-emulator/dist ./packages/iamport-emulator/dist
COPY package.json ./
USER node
EXPOSE 4000
CMD ["node", "dist/main.js"]
