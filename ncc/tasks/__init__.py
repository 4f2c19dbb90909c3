"""The tasks, one module each, every one a :class:`ncc.training.Task`; found by name through
:func:`ncc.training.get_task` (the ``ncc.tasks`` entry points)::

    >>> from ncc.training import get_task, load_config
    >>> config = load_config("loops.toml", {"task": "loops", "model.name": "ggnn", "epochs": 10})
    >>> get_task("loops").train(config)["test"]["accuracy"]

Modules: :mod:`~ncc.tasks.loops` (a sanity check), :mod:`~ncc.tasks.dataflow` (root-node data-flow
analyses), :mod:`~ncc.tasks.devmap`, :mod:`~ncc.tasks.threadcoarsening`, :mod:`~ncc.tasks.classifyapp`.
Importing this package imports none of them (nor torch).
"""
