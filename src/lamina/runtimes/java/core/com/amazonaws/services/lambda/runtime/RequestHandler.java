package com.amazonaws.services.lambda.runtime;

/** A handler whose input and output are mapped from and to JSON. */
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
