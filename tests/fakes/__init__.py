"""Local stand-ins for the SMS providers' services, speaking their real wire protocols over real sockets."""
