// Kept out of the page so the Content-Security-Policy can forbid inline scripts.
mermaid.initialize({startOnLoad: true, securityLevel: "strict"});
