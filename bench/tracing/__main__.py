from bench.tracing.run import main

main()
