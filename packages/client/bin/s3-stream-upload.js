#!/usr/bin/env node
// Launcher of the s3-stream-upload CLI of the installed package (Node 20+).
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv.slice(2));
