// Entry point of the `protoc-gen-weft` executable: reads a CodeGeneratorRequest on stdin.
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenWeft } from "./plugin.ts";

runNodeJs(protocGenWeft);
