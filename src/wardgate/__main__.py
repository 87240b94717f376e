from wardgate.cli import main

raise SystemExit(main())
