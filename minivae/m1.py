r"""Kingma et al.'s M1, the latent-feature discriminative model: a VAE's codes as features for a classifier.

Shan, Variational Autoencoder, "Semi-supervised VAE [Kingma et al., 2014]", model M1: train a VAE
q_φ(z|x), p_θ(x|z) on every digit, labelled or not (its ELBO needs no label); then train a classifier on
the codes z of the labelled digits alone:

    z ~ q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)),    q(y|z) = Cat(y | softmax(f(z))),

with f an MLP (softmax regression when it has no hidden layer). Kingma et al. used a transductive SVM on z;
here the classifier is trained on the cross-entropy −log q(y|z) with a fresh z = μ + σ ε per labelled digit
and step (the encoder's own noise as data augmentation), and it predicts from the mean, argmax_y q(y|μ_φ(x)).
The same :class:`Classifier` on the pixels themselves is the labels-only baseline.

Rows given to the trainer are packed data: ``[x | one-hot y]`` for :func:`minivae.objectives.classifier_objective`
and ``[μ | log σ² | one-hot y]`` for :func:`minivae.objectives.m1_objective`, so :func:`minivae.train.fit` needs
nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy

from minivae.backend import to_numpy
from minivae.checks import (
    check_classes,
    check_eps,
    check_finite_input,
    check_keys,
    check_rows,
    check_same_rows,
    check_sizes,
)
from minivae.distributions import categorical_log_prob, categorical_mode, log_softmax, one_hot, reparameterize
from minivae.nn import activation_fn, init_mlp, mlp


class Encoder(Protocol):
    r"""Any q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)) with its own parameters: a :class:`minivae.models.VAE`, or yours.

    ``encode(params, x)`` gives ``(mean, log_var)``, each ``(N, z_dim)``; ``init(rng, dtype)`` fresh params.
    """

    z_dim: int

    def init(self, rng: numpy.random.Generator, dtype: Any = ...) -> Any: ...

    def encode(self, params: Any, x: Any) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class Classifier:
    r"""q(y|x) = Cat(y | softmax(f(x))), f an MLP ``[x_dim, *hidden, n_classes]``: softmax regression if no hidden.

    Shan, Variational Autoencoder, semi-supervised VAE: the discriminative half of M1 (on codes z) and the
    labels-only baseline (on pixels x).
    """

    x_dim: int
    hidden: Sequence[int] = ()
    n_classes: int = 10
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", check_sizes(self.x_dim, self.hidden, self.n_classes))
        check_classes(self.n_classes)
        activation_fn(self.activation)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> list:
        r"""Fresh MLP parameters ``[(W, b), ...]`` of widths ``[x_dim, *hidden, n_classes]``."""
        return init_mlp([self.x_dim, *self.hidden, self.n_classes], rng, dtype)

    def classify(self, params: list, x: Any) -> Any:
        r"""log q(y|x) = log softmax(f(x)) for every class: ``(N, n_classes)``."""
        check_rows("x", x, self.x_dim, "example")
        logits = mlp(params, x, self.activation)
        return log_softmax(logits)

    def predict(self, params: list, x: Any) -> numpy.ndarray:
        r"""argmax_y q(y|x): host int labels ``(N,)``."""
        check_finite_input("x", x)
        return categorical_mode(self.classify(params, x))

    def cross_entropy(self, params: list, x: Any, labels: Any) -> Any:
        r"""−log q(y|x) = −Σ_c [y = c] log q(c|x) per example, ``(N,)``; ``labels`` are int classes ``(N,)``."""
        log_q = self.classify(params, x)
        check_same_rows("labels", labels, "x", x)
        # −Σ_c y_c log q(c|x)
        return -categorical_log_prob(labels, log_q)


@dataclass(frozen=True)
class M1:
    r"""M1: a VAE on all digits, then a :class:`Classifier` q(y|z) on the codes of the labelled ones.

    Shan, Variational Autoencoder, semi-supervised VAE (Kingma et al., 2014, M1). ``vae`` is any
    :class:`Encoder` (a :class:`minivae.models.VAE`, or any object with ``z_dim``, ``init`` and ``encode``).
    ``params`` is ``{"vae": ..., "classifier": ...}``; the VAE is trained first on its ELBO
    (``vae_objective(m1.vae)``), then the classifier on the labelled codes (:func:`minivae.objectives.m1_objective`)
    with the VAE held fixed.
    """

    vae: Encoder
    hidden: Sequence[int] = ()
    n_classes: int = 10
    activation: str = "relu"

    @property
    def classifier(self) -> Classifier:
        r"""The classifier q(y|z) on codes of ``vae.z_dim`` values."""
        return Classifier(self.vae.z_dim, self.hidden, self.n_classes, self.activation)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> dict:
        r"""Fresh parameters ``{"vae", "classifier"}`` drawn with ``rng``."""
        return {"vae": self.vae.init(rng, dtype), "classifier": self.classifier.init(rng, dtype)}

    def features(self, params: dict, x: Any) -> tuple[Any, Any]:
        r"""The codes of ``x``: q_φ(z|x) as ``(mean, log_var)``, each ``(N, z_dim)``."""
        check_keys(params, {"vae": object, "classifier": list}, "M1")
        return self.vae.encode(params["vae"], x)

    def classify(self, params: dict, x: Any) -> Any:
        r"""log q(y | z = μ_φ(x)): the classifier on the mean code of each digit, ``(N, n_classes)``."""
        mean, _ = self.features(params, x)
        return self.classifier.classify(params["classifier"], mean)

    def predict(self, params: dict, x: Any) -> numpy.ndarray:
        r"""argmax_y q(y | μ_φ(x)): host int labels ``(N,)``."""
        check_finite_input("x", x)
        return categorical_mode(self.classify(params, x))

    def sampled_cross_entropy(self, classifier: list, mean: Any, log_var: Any, labels: Any, eps: Any) -> Any:
        r"""−log q(y|z) with z = μ + σ ε ~ q_φ(z|x): the classifier's loss on one sampled code per row, ``(N,)``.

        Kingma et al. (2014), M1: the classifier is trained on samples z ~ q_φ(z|x) of the labelled digits;
        a fresh ``eps`` ``(N, z_dim)`` each step makes the encoder's noise a data augmentation.
        """
        check_eps(eps, mean)
        # z = μ + σ ε
        z = reparameterize(mean, log_var, eps)
        # −log q(y|z)
        return self.classifier.cross_entropy(classifier, z, labels)


def pack_labelled(labels: Any, n_classes: int, *columns: Any) -> numpy.ndarray:
    r"""Host rows ``[columns... | one-hot y]``, float32 ``(N, Σ widths + n_classes)``.

    The rows :func:`minivae.objectives.classifier_objective` and ``m1_objective`` train on.
    """
    host = [numpy.asarray(to_numpy(c), dtype=numpy.float32) for c in columns]
    return numpy.concatenate([*host, one_hot(numpy.asarray(labels), n_classes, host[0])], axis=1)
