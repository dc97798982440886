r"""Digit fantasies: a trained decoder p = σ(f_θ(z)) as one self-contained web page you can play with.

Shan, Variational Autoencoder: the demo slide "Digit Fantasies by a Deep Generative Model". The page itself
is three files shipped with the package (``page.html``, ``page.css``, ``page.js``); :mod:`.page` fills in
the decoder's weights and the codes, and writes it (:func:`write_fantasies`).
"""

from minivae.fantasies.page import (
    MAX_EXTENT,
    decoder_layers,
    fantasies_html,
    float32_base64,
    latent_view,
    start_code,
    write_fantasies,
)

__all__ = ["MAX_EXTENT", "decoder_layers", "fantasies_html", "float32_base64", "latent_view", "start_code",
           "write_fantasies"]
