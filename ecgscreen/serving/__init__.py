"""Running the service on one box: the embedded ``tritonserver``, the ``serve`` supervisor that
runs it with the gateway, and the managed-process helper both use."""
