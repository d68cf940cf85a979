"""Entry points of the AF-MARL Flower App; the code is twin-service's own (twin_service.federated.flower_app)."""

from twin_service.federated.flower_app import make_client_app, make_server_app

server = make_server_app()
client = make_client_app()
