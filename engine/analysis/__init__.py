"""Analysis tools: reduced-order bases, clustering, spectra."""
