# The OpsPilot hub. Build: docker build -t opspilot-hub .   (docker-compose.yml does this)
FROM node:20-bookworm-slim
WORKDIR /app
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.base.json schema.sql ./
COPY patches ./patches
COPY migrations ./migrations
COPY packages ./packages
RUN pnpm install --frozen-lockfile --prod && mkdir -p /data && chown node:node /data
USER node
ENV OPSPILOT_DATA_DIR=/data OPSPILOT_HOST=0.0.0.0 OPSPILOT_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "packages/hub/src/main.ts"]
