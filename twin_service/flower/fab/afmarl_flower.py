"""Entry points of the AF-MARL Flower App; the code is twin-service's own (twin_service.flower.app)."""

from twin_service.flower.app import make_client_app, make_server_app

server = make_server_app()
client = make_client_app()
