// Puppeteer (pulled in by @mermaid-js/mermaid-cli) must never download a browser:
// diagrams render with Debian's /usr/bin/chromium (see diagrams/puppeteer-config.json).
module.exports = { skipDownload: true };
