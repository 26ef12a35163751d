"""Real servers on 127.0.0.1 for the tests: moto, SeaweedFS, GCS emulator, Azurite, sshd."""
