import asyncio

from bench.notifier.run import main

asyncio.run(main())
