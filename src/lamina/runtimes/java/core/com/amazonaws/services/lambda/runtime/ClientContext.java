package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** The client context sent by a mobile SDK caller. */
public interface ClientContext {
    Client getClient();
    Map<String, String> getCustom();
    Map<String, String> getEnvironment();
}
