"""The systems the socket edge is measured beside, run from a separate bench virtualenv:
the peer (python-socketio 5 with AsyncAioPikaManager) and the limit (a bare ``websockets``
server fed by aio-pika). Nothing in the project imports them."""
