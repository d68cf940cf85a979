"""AF-MARL on Flower's Deployment Engine: the orchestration above the trainer it drives.

* :mod:`.app` - the Flower App's ServerApp (runs :func:`twin_service.learn.af_marl.train` with its clients on
  SuperNodes) and ClientApp (:func:`twin_service.learn.af_marl_client.local_update` on a SuperNode);
* :mod:`.run` - starts a SuperLink and SuperNodes (or uses a running SuperLink) and submits the App (``fab/``).

Layered above :mod:`twin_service.learn` (it drives the trainer), which sits above :mod:`twin_service.federated`
(the pure aggregation maths, client selection and the semi-synchronous server). flwr is imported only when used.
"""
