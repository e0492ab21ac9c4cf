"""python -m billing: run the billing gRPC server."""

from billing.server import main

if __name__ == "__main__":
    main()
