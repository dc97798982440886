r"""The speed wing: the same interfaces as the lesson modules, written for speed (flat buffers, fused kernels).

A reader of the lessons can skip this folder. Nothing in a lesson module imports from here; ``minivae.train.fit``
picks these implementations where they are faster and gives the same numbers.
"""
