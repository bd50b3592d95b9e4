from benchmarks.entry import main

raise SystemExit(main())
